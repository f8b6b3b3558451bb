package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// dataFile is the store's own descriptor of BuntDB's file, through which it
// syncs the file. BuntDB calls fsync itself under its "Always" policy, and at
// Close, but ignores the errors; a descriptor of ours sees them (on Linux every
// open descriptor of a file is told of a failed write-back on its next fsync).
//
// BuntDB's shrink writes the live records to a new file and renames it over the
// old one, so before trusting the descriptor, sync checks that the path still
// names the same file; when it does not, it opens the new file, syncs it and
// syncs the directory, which makes the rename itself durable.
//
// Under the other policies the writer calls follow now and then, so that the
// descriptor does not keep a rewritten-away file, and its disk space, alive.
//
// A dataFile belongs to the writer goroutine, then to Close.
type dataFile struct {
	path string
	f    *os.File
	fi   os.FileInfo // of f
}

func openDataFile(path string) (*dataFile, error) {
	d := &dataFile{path: path}
	if err := d.reopen(); err != nil {
		return nil, err
	}
	return d, nil
}

// reopen points d at the file the path names now.
func (d *dataFile) reopen() error {
	f, err := os.Open(d.path)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close() // read-only; nothing to lose
		return err
	}
	if d.f != nil {
		_ = d.f.Close() // read-only; nothing to lose
	}
	d.f, d.fi = f, fi
	return nil
}

// sync makes everything written to the file so far durable.
func (d *dataFile) sync() error {
	if err := d.f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", d.path, err)
	}
	fi, err := os.Stat(d.path)
	if err != nil {
		return fmt.Errorf("fsync %s: %w", d.path, err)
	}
	if os.SameFile(fi, d.fi) {
		return nil
	}
	if err := d.reopen(); err != nil {
		return fmt.Errorf("fsync %s: %w", d.path, err)
	}
	if err := d.f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", d.path, err)
	}
	return syncDir(filepath.Dir(d.path))
}

// follow points d at the file the path names now, if that is another file.
func (d *dataFile) follow() error {
	fi, err := os.Stat(d.path)
	if err == nil && !os.SameFile(fi, d.fi) {
		err = d.reopen()
	}
	if err != nil {
		return fmt.Errorf("reopen %s: %w", d.path, err)
	}
	return nil
}

// close syncs the file a last time and closes the descriptor.
func (d *dataFile) close() error {
	err := d.sync()
	return errors.Join(err, d.f.Close())
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}
