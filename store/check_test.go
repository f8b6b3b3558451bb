package store

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzOpen writes arbitrary bytes as the data file. The invariant: Open either
// refuses the file or opens it such that, after a write, the file opens again
// and holds the write.
func FuzzOpen(f *testing.F) {
	const rec = "*3\r\n$3\r\nset\r\n$1\r\na\r\n$1\r\n1\r\n"
	for _, seed := range []string{
		"",
		rec,
		rec + rec[:17],
		rec + "\x00\x00",
		rec + "\x00" + rec,
		rec + "\x00" + rec[:5],
		"*2\r\n$3\r\ndel\r\n$1\r\na\r\n",
		"*1\r\n$7\r\nflushdb\r\n" + rec,
		"*5\r\n$3\r\nset\r\n$1\r\na\r\n$1\r\n1\r\n$2\r\nex\r\n$2\r\n10\r\n",
		"*3\r\n$3\r\nset\r\n$1\r\na\r\nGARBAGE",
		"*0\r\n",
		"GARBAGE",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, FileName), data, 0o600); err != nil {
			t.Fatal(err)
		}
		db, err := Open(Options{Dir: dir, Fsync: Never})
		if err != nil {
			return
		}
		db.Set("fuzz", []byte("written"))
		db.Set("fuzz2", []byte("written"))
		if err := db.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		db, err = Open(Options{Dir: dir, Fsync: Never})
		if err != nil {
			t.Fatalf("the file opened, was written, and no longer opens: %v", err)
		}
		defer db.Close()
		got := scanMap(t, db, "fuzz")
		if got["fuzz"] != "written" || got["fuzz2"] != "written" {
			t.Fatalf("the writes are not there after reopening: %v", got)
		}
	})
}
