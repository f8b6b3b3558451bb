package tls

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"
)

// maxFileSize bounds what readFile reads: certificate bundles are far
// smaller, so a larger file is not one.
const maxFileSize = 4 << 20

// stamp identifies a version of a file: its identity (device and inode, so a
// file replaced by rename is seen even with the same size and time), size and
// modification time.
type stamp struct {
	info fs.FileInfo // nil: unknown
}

func (s stamp) same(t stamp) bool {
	if s.info == nil || t.info == nil {
		return s.info == t.info
	}
	return os.SameFile(s.info, t.info) && s.info.Size() == t.info.Size() &&
		s.info.ModTime().Equal(t.info.ModTime())
}

func sameStamps(a, b []stamp) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].same(b[i]) {
			return false
		}
	}
	return true
}

// readFile reads path and returns its contents with the stamp of the version
// read. The stamp is taken before reading, so a write during the read leaves a
// stamp that differs from the file's next one and is reloaded.
func readFile(path string) ([]byte, stamp, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, stamp{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, stamp{}, err
	}
	if !fi.Mode().IsRegular() {
		return nil, stamp{}, &fs.PathError{Op: "read", Path: path, Err: errors.New("not a regular file")}
	}
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, stamp{}, err
	}
	if len(b) > maxFileSize {
		return nil, stamp{}, &fs.PathError{Op: "read", Path: path, Err: fmt.Errorf("larger than %d bytes", maxFileSize)}
	}
	return b, stamp{fi}, nil
}

// watch polls paths every interval until ctx is done, and calls reload when
// their stamps differ from the ones current returns (in the same order) and
// have stayed the same for one interval, so that files being written are not
// read half done. A failed reload is reported once through onError (which may
// be nil) and not retried until a file changes again; so is a failed stat.
func watch(ctx context.Context, paths []string, interval time.Duration, current func() []stamp, reload func() error, onError func(error)) {
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
		now, err := stat(paths)
		if err != nil {
			if !statFailed {
				report(err)
			}
			statFailed = true
			continue
		}
		statFailed = false
		switch {
		case sameStamps(now, current()):
			pending = false
		case !sameStamps(now, seen):
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

// stat returns the stamps of paths.
func stat(paths []string) ([]stamp, error) {
	st := make([]stamp, len(paths))
	for i, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		st[i] = stamp{fi}
	}
	return st, nil
}
