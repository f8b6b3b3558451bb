package store

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// errTorn is how the checker's readers report the end of the file in the middle
// of a record.
var errTorn = errors.New("torn record")

// maxDigits bounds the decimal numbers of a record: a count or a length with
// more digits is corruption, not data.
const maxDigits = 10

// checkAOF reads an append-only file in BuntDB's format (RESP arrays of bulk
// strings, "*3\r\n$3\r\nset\r\n$1\r\nk\r\n$1\r\nv\r\n", with NUL bytes allowed
// between records) and returns the offset at which a torn last record begins,
// or -1 when the file ends with a whole record.
//
// It exists because of two things BuntDB does when it loads a file. On reaching
// the end of the file inside a record, it truncates the file there and opens it
// as if all were well, whatever the bytes of that last record were: a file of
// garbage with no line feed in it would be emptied. A record cut short by a
// crash in the middle of a write is a prefix of a well-formed record; checkAOF
// accepts that and nothing else. And it skips NUL bytes between records
// (a crash can leave a file's tail zeroed) but does not count them when it
// decides where to append, so NUL bytes followed by a whole record would make
// its first write overwrite the end of that record; checkAOF refuses such a
// file. It checks the framing only: BuntDB itself rejects unknown commands and
// wrong arities.
func checkAOF(r io.Reader) (torn int64, err error) {
	c := checker{r: bufio.NewReaderSize(r, 64<<10)}
	nul := int64(-1) // the offset of the first NUL byte, if any
	for {
		start := c.off
		b, err := c.byte()
		if err == errTorn {
			return -1, nil // the end of the file between records
		}
		if err != nil {
			return 0, err
		}
		if b == 0 {
			if nul < 0 {
				nul = start
			}
			continue
		}
		if b != '*' {
			return 0, c.invalid(b, "'*'")
		}
		if err := c.record(); err != nil {
			if err == errTorn {
				return start, nil
			}
			return 0, err
		}
		if nul >= 0 {
			return 0, fmt.Errorf("NUL bytes from offset %d precede the record at offset %d, which BuntDB's next write would overwrite", nul, start)
		}
	}
}

// checker reads a file and counts the bytes it has read.
type checker struct {
	r   *bufio.Reader
	off int64 // offset of the next byte
}

// record reads the rest of a record whose '*' has been read.
func (c *checker) record() error {
	n, err := c.number()
	if err != nil {
		return err
	}
	for range n {
		b, err := c.byte()
		if err != nil {
			return err
		}
		if b != '$' {
			return c.invalid(b, "'$'")
		}
		size, err := c.number()
		if err != nil {
			return err
		}
		skipped, err := c.r.Discard(size)
		c.off += int64(skipped)
		if err == io.EOF {
			return errTorn
		}
		if err != nil {
			return err
		}
		if err := c.expect('\r'); err != nil {
			return err
		}
		if err := c.expect('\n'); err != nil {
			return err
		}
	}
	return nil
}

// number reads one or more decimal digits followed by "\r\n".
func (c *checker) number() (int, error) {
	n, digits := 0, 0
	for {
		b, err := c.byte()
		if err != nil {
			return 0, err
		}
		if b == '\r' && digits > 0 {
			break
		}
		if b < '0' || b > '9' || digits == maxDigits {
			return 0, c.invalid(b, "a digit")
		}
		n = n*10 + int(b-'0')
		digits++
	}
	return n, c.expect('\n')
}

func (c *checker) expect(want byte) error {
	b, err := c.byte()
	if err != nil {
		return err
	}
	if b != want {
		return c.invalid(b, fmt.Sprintf("%q", want))
	}
	return nil
}

func (c *checker) byte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == io.EOF {
		return 0, errTorn
	}
	if err != nil {
		return 0, err
	}
	c.off++
	return b, nil
}

// invalid describes the byte just read, which is not what the format allows.
func (c *checker) invalid(b byte, want string) error {
	return fmt.Errorf("invalid data at offset %d: %q where %s belongs", c.off-1, b, want)
}
