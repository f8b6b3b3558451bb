package auth

import (
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// cheapParams make argon2id fast enough for tests that hash many passwords.
var cheapParams = argon2Params{memory: 64, time: 1, threads: 1}

func TestMain(m *testing.M) {
	hashParams = cheapParams
	os.Exit(m.Run())
}

// TestRecommendedParams hashes once with the parameters new passwords get.
func TestRecommendedParams(t *testing.T) {
	hashParams = recommendedParams
	t.Cleanup(func() { hashParams = cheapParams })
	h, err := newHash([]byte("correct horse"))
	if err != nil {
		t.Fatal(err)
	}
	enc := h.encode()
	if !strings.HasPrefix(enc, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("encoded %q", enc)
	}
	if len(h.salt) != 16 || len(h.key) != 32 {
		t.Fatalf("salt %d bytes, key %d bytes", len(h.salt), len(h.key))
	}
	back, err := parseHash(enc)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ok := back.verify([]byte("correct horse"))
	t.Logf("one check with m=19456,t=2,p=1 took %v", time.Since(start))
	if !ok || back.verify([]byte("correct horse ")) {
		t.Fatal("verify disagrees with the password")
	}
}

func TestParseHash(t *testing.T) {
	bc, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	const salt = "c2FsdHNhbHRzYWx0c2FsdA"                     // 16 bytes
	const key = "a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U" // 32 bytes
	tests := []struct {
		in      string
		wantErr string // "" for valid
	}{
		{"$argon2id$v=19$m=65536,t=3,p=2$" + salt + "$" + key, ""},
		{"$argon2id$m=64,t=1,p=1$" + salt + "$" + key, ""}, // v= may be left out
		{"$argon2id$v=19$p=2,t=3,m=65536$" + salt + "$" + key, ""},
		{string(bc), ""},
		{"$2b$" + string(bc[4:]), ""},
		{"$2y$" + string(bc[4:]), ""},
		{"", "missing hash"},
		{"plain", "unknown hash format"},
		{"$argon2i$v=19$m=64,t=1,p=1$" + salt + "$" + key, `unsupported hash scheme "argon2i"`},
		{"$6$salt$hash", `unsupported hash scheme "6"`},
		{"$2x$" + string(bc[4:]), `unsupported hash scheme "2x"`},
		{string(bc[:59]), "bad bcrypt hash"},
		{"$2a$99$" + string(bc[7:]), "bad bcrypt hash"},
		{"$argon2id$v=16$m=64,t=1,p=1$" + salt + "$" + key, "unsupported version"},
		{"$argon2id$x=19$m=64,t=1,p=1$" + salt + "$" + key, "want $argon2id$v=19$m=M"},
		{"$argon2id$v=19$m=64,t=1,p=1$" + salt, "want $argon2id$v=19$m=M,t=T,p=P$salt$hash"},
		{"$argon2id$v=19$m=64,t=1$" + salt + "$" + key, "want the parameters m, t and p"},
		{"$argon2id$v=19$m=64,t=1,p=1,k=2$" + salt + "$" + key, "unknown parameter"},
		{"$argon2id$v=19$m=64,t=1,p=1,m=8$" + salt + "$" + key, "given twice"},
		{"$argon2id$v=19$m=064,t=1,p=1$" + salt + "$" + key, `parameter "m=064"`},
		{"$argon2id$v=19$m=-1,t=1,p=1$" + salt + "$" + key, `parameter "m=-1"`},
		{"$argon2id$v=19$m=64,t=0,p=1$" + salt + "$" + key, "at least 1"},
		{"$argon2id$v=19$m=64,t=1,p=0$" + salt + "$" + key, "at least 1"},
		{"$argon2id$v=19$m=64,t=1,p=300$" + salt + "$" + key, "above 255"},
		{"$argon2id$v=19$m=15,t=1,p=2$" + salt + "$" + key, "at least 8*p"},
		{"$argon2id$v=19$m=99999999,t=1,p=2$" + salt + "$" + key, "KiB"},
		{"$argon2id$v=19$m=64,t=1,p=1$c2FsdA$" + key, "salt must be"},
		{"$argon2id$v=19$m=64,t=1,p=1$" + salt + "=$" + key, "salt must be"},
		{"$argon2id$v=19$m=64,t=1,p=1$" + salt + "$a2V5", "hash must be"},
		{"$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key + "!", "hash must be"},
	}
	for _, tt := range tests {
		h, err := parseHash(tt.in)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("parseHash(%q): %v", tt.in, err)
		case tt.wantErr == "" && h.encode() != tt.in && !strings.Contains(tt.in, "p=2,t=3") && !strings.HasPrefix(tt.in, "$argon2id$m="):
			t.Errorf("parseHash(%q).encode() = %q", tt.in, h.encode())
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("parseHash(%q) = %v, want an error with %q", tt.in, err, tt.wantErr)
		}
	}
}

func TestVerifyBcrypt(t *testing.T) {
	bc, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	for _, prefix := range []string{"$2a$", "$2b$", "$2y$"} {
		h, err := parseHash(prefix + string(bc[4:]))
		if err != nil {
			t.Fatal(err)
		}
		if !h.verify([]byte("s3cret")) {
			t.Errorf("%s: right password refused", prefix)
		}
		if h.verify([]byte("s3cre")) || h.verify(nil) {
			t.Errorf("%s: wrong password accepted", prefix)
		}
	}
}

func TestDummy(t *testing.T) {
	for _, c := range []cost{{params: cheapParams}, {params: recommendedParams}, {bcryptCost: 4}, {bcryptCost: 12}} {
		d := c.dummy()
		if d.cost() != c {
			t.Errorf("dummy of %+v costs %+v", c, d.cost())
		}
		if d.bcrypt != nil {
			// It must be a hash bcrypt computes, not one it rejects at once.
			if err := bcrypt.CompareHashAndPassword(d.bcrypt, []byte("x")); err != bcrypt.ErrMismatchedHashAndPassword {
				t.Errorf("dummy %s: %v", d.bcrypt, err)
			}
			if c.bcryptCost > 4 {
				continue // slow
			}
		}
		if c.params == recommendedParams {
			continue // slow; TestRecommendedParams covers it
		}
		if d.verify([]byte("")) || d.verify([]byte("x")) {
			t.Errorf("dummy of %+v matched", c)
		}
	}
}
