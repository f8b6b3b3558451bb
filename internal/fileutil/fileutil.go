package fileutil

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Stamp identifies a version of a file: its identity (device and inode, so a
// file replaced by rename is seen even with the same size and time), size and
// modification time. The zero Stamp is unknown and is the same only as
// another zero Stamp.
type Stamp struct {
	info fs.FileInfo // nil: unknown
}

// Same reports whether s and t are the same version of the same file.
func (s Stamp) Same(t Stamp) bool {
	if s.info == nil || t.info == nil {
		return s.info == t.info
	}
	return os.SameFile(s.info, t.info) && s.info.Size() == t.info.Size() &&
		s.info.ModTime().Equal(t.info.ModTime())
}

// SameStamps reports whether a and b have the same length and each of their
// stamps is the same as the other's at its index.
func SameStamps(a, b []Stamp) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Same(b[i]) {
			return false
		}
	}
	return true
}

// ReadFile reads path and returns its contents with the stamp of the version
// read. The stamp is taken before reading, so a write during the read leaves a
// stamp that differs from the file's next one and is reloaded. A file that is
// not a regular file, or (when max is positive) that holds more than max
// bytes, is an error.
func ReadFile(path string, max int64) ([]byte, Stamp, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, Stamp{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, Stamp{}, err
	}
	if !fi.Mode().IsRegular() {
		return nil, Stamp{}, &fs.PathError{Op: "read", Path: path, Err: errors.New("not a regular file")}
	}
	var r io.Reader = f
	if max > 0 {
		r = io.LimitReader(f, max+1)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, Stamp{}, err
	}
	if max > 0 && int64(len(b)) > max {
		return nil, Stamp{}, &fs.PathError{Op: "read", Path: path, Err: fmt.Errorf("larger than %d bytes", max)}
	}
	return b, Stamp{fi}, nil
}

// Stat returns the stamps of paths, in their order. It fails at the first path
// that cannot be stat'ed.
func Stat(paths []string) ([]Stamp, error) {
	st := make([]Stamp, len(paths))
	for i, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		st[i] = Stamp{fi}
	}
	return st, nil
}

// Watch polls paths every interval (a second if interval is not positive)
// until ctx is done, and calls reload when their stamps differ from the ones
// current returns (in the same order) and have stayed the same for one
// interval, so that files being written are not read half done. A failed
// reload is reported once through onError (which may be nil) and not retried
// until a file changes again; so is a failed stat, until a stat succeeds.
//
// Watch blocks, so run it on a goroutine the caller waits for. It calls
// current, reload and onError on its own goroutine, one at a time; current
// must be safe against whatever else changes what it returns.
func Watch(ctx context.Context, paths []string, interval time.Duration, current func() []Stamp, reload func() error, onError func(error)) {
	if interval <= 0 {
		interval = time.Second
	}
	report := func(err error) {
		if onError != nil {
			onError(err)
		}
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	seen := current() // the stamps of the last poll
	pending := false  // seen differs from the loaded version and was not tried
	statFailed := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now, err := Stat(paths)
		if err != nil {
			if !statFailed {
				report(err)
			}
			statFailed = true
			continue
		}
		statFailed = false
		switch {
		case SameStamps(now, current()):
			pending = false
		case !SameStamps(now, seen):
			pending = true // changed: reload once it settles
		case pending:
			pending = false
			if err := reload(); err != nil {
				report(err)
			}
		}
		seen = now
	}
}

// WriteAtomic replaces path with data, with mode perm: a temporary file in the
// same directory is written, synced and renamed over path, and the directory
// is synced so the rename survives a crash. A reader sees the old file or the
// new one, never a part. When path is a symbolic link, the file it points to
// is replaced and the link is kept. A failure before the rename removes the
// temporary file and leaves path as it was; one after it (opening or syncing
// the directory) leaves the new file in place.
func WriteAtomic(path string, data []byte, perm os.FileMode) (err error) {
	if target, err := filepath.EvalSymlinks(path); err == nil {
		path = target
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".*.tmp")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = f.Chmod(perm); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err = d.Sync(); err != nil {
		d.Close()
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return d.Close()
}
