package auth

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
)

const passwdUsage = "usage: avocet passwd add|delete|list FILE [USER]"

const passwdHelp = passwdUsage + `

  add FILE USER     set USER's password, adding USER and creating FILE as needed
  delete FILE USER  remove USER from FILE
  list FILE         print the usernames in FILE, one a line

add reads the password from standard input: the first line, without its line
ending, when standard input is not a terminal (echo "$PW" | avocet passwd add
FILE USER); on a terminal it prompts twice on standard error. Input is echoed
as it is typed. FILE is rewritten atomically with mode 0600; comments in it
are not kept.

Exit status: 0 done; 1 failed (FILE unreadable, invalid or not writable, USER
absent for delete, no password or the two differ); 2 usage error.
`

// Exit statuses of RunPasswd.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

// RunPasswd runs `avocet passwd`; args are the arguments after "passwd":
//
//	avocet passwd add FILE USER     set USER's password (FILE is created if missing)
//	avocet passwd delete FILE USER  remove USER (exit 1 if absent)
//	avocet passwd list FILE         print the usernames, one a line
//
// add reads the password from stdin. When isTerminal reports false (or is nil)
// it reads one line and strips its "\n" or "\r\n", so scripts can pipe the
// password in. When isTerminal reports true it prompts on stderr and reads the
// password twice, one line each, and fails if they differ; it does not turn
// terminal echo off, so the password shows as it is typed.
//
// It returns the exit status: 0 done, 1 failed (the message is on stderr), 2
// usage error (with the usage line on stderr). "-h", "--help" and "help" print
// the help on stdout and return 0.
func RunPasswd(args []string, stdin io.Reader, stdout, stderr io.Writer, isTerminal func() bool) int {
	fail := func(err error) int {
		fmt.Fprintf(stderr, "avocet passwd: %v\n", err)
		return exitFail
	}
	usage := func(msg string) int {
		if msg != "" {
			fmt.Fprintf(stderr, "avocet passwd: %s\n", msg)
		}
		fmt.Fprintln(stderr, passwdUsage)
		return exitUsage
	}
	if len(args) == 0 {
		return usage("missing command")
	}
	want := map[string]string{"add": "FILE USER", "delete": "FILE USER", "list": "FILE"}
	cmd := args[0]
	switch w, ok := want[cmd]; {
	case cmd == "-h" || cmd == "--help" || cmd == "help":
		fmt.Fprint(stdout, passwdHelp)
		return exitOK
	case !ok:
		return usage(fmt.Sprintf("unknown command %q", cmd))
	case len(args) != 1+len(strings.Fields(w)):
		return usage(fmt.Sprintf("%s takes %s", cmd, w))
	case args[1] == "":
		return usage("empty FILE")
	}
	file := args[1]
	var user string
	if cmd != "list" {
		user = args[2]
		if err := ValidUsername(user); err != nil {
			return usage(err.Error())
		}
	}

	p, err := LoadPasswords(file)
	if cmd == "add" && errors.Is(err, fs.ErrNotExist) {
		p, err = NewPasswords(), nil
	}
	if err != nil {
		return fail(err)
	}
	switch cmd {
	case "list":
		var b bytes.Buffer
		for _, u := range p.Users() {
			b.WriteString(u)
			b.WriteByte('\n')
		}
		if _, err := stdout.Write(b.Bytes()); err != nil {
			return fail(err)
		}
		return exitOK
	case "delete":
		if !p.Delete(user) {
			return fail(fmt.Errorf("%s: no user %q", file, user))
		}
	case "add":
		pw, err := readPassword(stdin, stderr, isTerminal != nil && isTerminal())
		if err != nil {
			return fail(err)
		}
		if err := p.Set(user, pw); err != nil {
			return fail(err)
		}
	}
	if err := p.Save(file); err != nil {
		return fail(err)
	}
	return exitOK
}

// readPassword reads a password from r: one line, or on a terminal two equal
// lines after prompts on prompt.
func readPassword(r io.Reader, prompt io.Writer, terminal bool) ([]byte, error) {
	br := bufio.NewReader(r)
	if !terminal {
		pw, err := readLine(br)
		if err != nil {
			return nil, fmt.Errorf("read password from standard input: %w", err)
		}
		return pw, nil
	}
	fmt.Fprint(prompt, "Password: ")
	pw, err := readLine(br)
	if err != nil {
		return nil, fmt.Errorf("read password: %w", err)
	}
	fmt.Fprint(prompt, "Confirm password: ")
	again, err := readLine(br)
	if err != nil {
		return nil, fmt.Errorf("read password: %w", err)
	}
	if !bytes.Equal(pw, again) {
		return nil, errors.New("passwords do not match")
	}
	return pw, nil
}

// readLine reads a line without its "\n" or "\r\n"; a last line without "\n"
// counts, but nothing at all is an error.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadBytes('\n')
	if err == io.EOF && len(line) > 0 {
		err = nil
	}
	if err == io.EOF {
		return nil, errors.New("no input")
	}
	if err != nil {
		return nil, err
	}
	line = bytes.TrimSuffix(line, []byte("\n"))
	return bytes.TrimSuffix(line, []byte("\r")), nil
}
