package auth

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// passwd runs RunPasswd and returns its exit status, stdout and stderr.
func passwd(stdin string, terminal bool, args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := RunPasswd(args, strings.NewReader(stdin), &out, &errOut, func() bool { return terminal })
	return code, out.String(), errOut.String()
}

func TestRunPasswd(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "sub", "passwd")
	if err := os.Mkdir(filepath.Dir(file), 0o700); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		stdin    string
		terminal bool
		args     []string
		code     int
		stdout   string
		stderr   string // a part of it
	}{
		{"", false, []string{"list", file}, 1, "", "no such file"},
		{"", false, []string{"delete", file, "alice"}, 1, "", "no such file"},
		{"alice-pw\n", false, []string{"add", file, "alice"}, 0, "", ""},
		{"bob-pw", false, []string{"add", file, "bob"}, 0, "", ""}, // no final newline
		{"carol-pw\r\nignored\n", false, []string{"add", file, "carol"}, 0, "", ""},
		{"", false, []string{"list", file}, 0, "alice\nbob\ncarol\n", ""},
		{"new-bob\n", false, []string{"add", file, "bob"}, 0, "", ""}, // replaces
		{"", false, []string{"add", file, "dave"}, 1, "", "no input"},
		{"\n", false, []string{"add", file, "dave"}, 1, "", "empty password"},
		{"dave-pw\ndave-pw\n", true, []string{"add", file, "dave"}, 0, "", "Password: Confirm password: "},
		{"one\ntwo\n", true, []string{"add", file, "erin"}, 1, "", "passwords do not match"},
		{"one\n", true, []string{"add", file, "erin"}, 1, "", "no input"},
		{"", false, []string{"delete", file, "carol"}, 0, "", ""},
		{"", false, []string{"delete", file, "carol"}, 1, "", `no user "carol"`},
		{"", false, []string{"list", file}, 0, "alice\nbob\ndave\n", ""},
		// Usage errors.
		{"", false, nil, 2, "", "missing command\nusage: avocet passwd add|delete|list FILE [USER]\n"},
		{"", false, []string{"remove", file, "x"}, 2, "", `unknown command "remove"`},
		{"", false, []string{"add", file}, 2, "", "add takes FILE USER"},
		{"", false, []string{"list", file, "x"}, 2, "", "list takes FILE\n"},
		{"", false, []string{"delete"}, 2, "", "usage:"},
		{"x\n", false, []string{"add", "", "x"}, 2, "", "empty FILE"},
		{"x\n", false, []string{"add", file, "a:b"}, 2, "", `username "a:b": holds ':'`},
		{"", false, []string{"--help"}, 0, passwdHelp, ""},
	}
	for i, s := range steps {
		code, stdout, stderr := passwd(s.stdin, s.terminal, s.args...)
		if code != s.code || stdout != s.stdout || !strings.Contains(stderr, s.stderr) || (s.stderr == "" && stderr != "") {
			t.Fatalf("step %d %q: exit %d, stdout %q, stderr %q; want %d, %q, %q",
				i, s.args, code, stdout, stderr, s.code, s.stdout, s.stderr)
		}
	}

	p, err := LoadPasswords(file)
	if err != nil {
		t.Fatal(err)
	}
	for user, pw := range map[string]string{"alice": "alice-pw", "bob": "new-bob", "dave": "dave-pw"} {
		if !p.Check(user, []byte(pw)) {
			t.Errorf("%s: password %q refused", user, pw)
		}
	}
	if p.Check("bob", []byte("bob-pw")) {
		t.Error("bob's old password accepted")
	}
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file mode: %v %v", fi, err)
	}

	// A broken file is not overwritten.
	writeFile(t, dir, "broken", "alice\n")
	code, _, stderr := passwd("pw\n", false, "add", filepath.Join(dir, "broken"), "bob")
	if code != 1 || !strings.Contains(stderr, "broken:1: want username:hash") {
		t.Fatalf("add to a broken file: %d %q", code, stderr)
	}
}
