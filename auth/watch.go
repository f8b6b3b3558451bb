package auth

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"time"
)

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
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, stamp{}, err
	}
	return b, stamp{fi}, nil
}

// watch polls path every interval until ctx is done, and calls reload when the
// file's stamp differs from the one current returns and has stayed the same
// for one interval, so that a file being written in place is not read half
// done. A failed reload is reported once through onError (which may be nil)
// and not retried until the file changes again; so is a failed stat.
func watch(ctx context.Context, path string, interval time.Duration, current func() stamp, reload func() error, onError func(error)) {
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
	seen := current() // the stamp of the last poll
	pending := false  // seen differs from the loaded version and was not tried
	statFailed := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fi, err := os.Stat(path)
		if err != nil {
			if !statFailed {
				report(err)
			}
			statFailed = true
			continue
		}
		statFailed = false
		now := stamp{fi}
		switch {
		case now.same(current()):
			pending = false
		case !now.same(seen):
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
