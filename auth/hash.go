package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// argon2Params are the cost parameters of an argon2id hash, as its PHC string
// writes them: m (memory in KiB), t (passes) and p (lanes).
type argon2Params struct {
	memory  uint32
	time    uint32
	threads uint8
}

// recommendedParams are the parameters new hashes get: 19 MiB, two passes, one
// lane, OWASP's recommended argon2id setting. The broker pays the cost on every
// CONNECT that carries a password, and after a network blip thousands of devices
// reconnect at once, so the cost is set at the recommended floor rather than
// above it; memory hardness, not time, is what makes GPU guessing expensive.
// Verification reads the parameters from each hash, so raising them later only
// affects passwords set afterwards.
var recommendedParams = argon2Params{memory: 19 * 1024, time: 2, threads: 1}

// hashParams are the parameters Set uses; tests lower them to keep hashing fast.
var hashParams = recommendedParams

const (
	saltLen = 16 // bytes of random salt in each new hash
	keyLen  = 32 // bytes of derived key in each new hash

	minSaltLen = 8  // Argon2's minimum (RFC 9106, section 3.1)
	minKeyLen  = 16 // shorter keys are refused though Argon2 allows 4 bytes
	maxMemory  = 4 << 20
)

// hashSlots bounds how many hashes are computed at once. Argon2 takes its
// memory for the length of the computation, so a burst of CONNECTs would
// otherwise take GOMAXPROCS times more memory for no more throughput.
var hashSlots = make(chan struct{}, runtime.GOMAXPROCS(0))

// b64 is the base64 of PHC strings: the standard alphabet without padding.
var b64 = base64.RawStdEncoding

// hash is a parsed password hash: argon2id (params, salt, key) or bcrypt (raw).
type hash struct {
	params argon2Params
	salt   []byte
	key    []byte
	bcrypt []byte // the whole bcrypt string; nil for argon2id
}

// verify reports whether password is the one h was made from, comparing in
// constant time. It holds one of hashSlots while it computes.
func (h *hash) verify(password []byte) bool {
	hashSlots <- struct{}{}
	defer func() { <-hashSlots }()
	if h.bcrypt != nil {
		return bcrypt.CompareHashAndPassword(h.bcrypt, password) == nil
	}
	k := argon2.IDKey(password, h.salt, h.params.time, h.params.memory, h.params.threads, uint32(len(h.key)))
	return subtle.ConstantTimeCompare(k, h.key) == 1
}

// encode returns the hash as the password file writes it.
func (h *hash) encode() string {
	if h.bcrypt != nil {
		return string(h.bcrypt)
	}
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, h.params.memory, h.params.time, h.params.threads,
		b64.EncodeToString(h.salt), b64.EncodeToString(h.key))
}

// cost identifies the work a hash takes to verify, to pick a dummy like it.
type cost struct {
	params     argon2Params
	bcryptCost int // 0 for argon2id
}

func (h *hash) cost() cost {
	if h.bcrypt != nil {
		c, _ := bcrypt.Cost(h.bcrypt) // parseHash checked it
		return cost{bcryptCost: c}
	}
	return cost{params: h.params}
}

// dummy returns a hash that costs what c costs to verify and matches no
// password, checked in place of the hash of a user that does not exist.
func (c cost) dummy() *hash {
	if c.bcryptCost != 0 {
		// A syntactically valid bcrypt string: version, cost, then 22 characters
		// of salt and 31 of hash in bcrypt's base64 alphabet.
		s := fmt.Sprintf("$2a$%02d$%s", c.bcryptCost, strings.Repeat("O", 53))
		return &hash{bcrypt: []byte(s)}
	}
	return &hash{params: c.params, salt: make([]byte, saltLen), key: make([]byte, keyLen)}
}

// newHash hashes password with argon2id, hashParams and a fresh random salt.
func newHash(password []byte) (*hash, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("salt: %w", err)
	}
	p := hashParams
	hashSlots <- struct{}{}
	key := argon2.IDKey(password, salt, p.time, p.memory, p.threads, keyLen)
	<-hashSlots
	return &hash{params: p, salt: salt, key: key}, nil
}

// parseHash parses an argon2id PHC string or a bcrypt string ($2a$, $2b$ or
// $2y$).
func parseHash(s string) (*hash, error) {
	switch {
	case strings.HasPrefix(s, "$argon2id$"):
		return parseArgon2id(s)
	case strings.HasPrefix(s, "$2a$"), strings.HasPrefix(s, "$2b$"), strings.HasPrefix(s, "$2y$"):
		b := []byte(s)
		if _, err := bcrypt.Cost(b); err != nil {
			return nil, fmt.Errorf("bad bcrypt hash: %w", err)
		}
		if len(b) != 60 {
			return nil, errors.New("bad bcrypt hash: not 60 characters long")
		}
		return &hash{bcrypt: b}, nil
	case s == "":
		return nil, errors.New("missing hash")
	}
	if scheme, _, ok := strings.Cut(strings.TrimPrefix(s, "$"), "$"); ok && s[0] == '$' && len(scheme) <= 16 {
		return nil, fmt.Errorf("unsupported hash scheme %q (want argon2id, or bcrypt $2a$, $2b$ or $2y$)", scheme)
	}
	return nil, errors.New("unknown hash format (want $argon2id$..., or bcrypt $2a$, $2b$ or $2y$)")
}

// parseArgon2id parses $argon2id$v=19$m=M,t=T,p=P$salt$key; the v= field may
// be left out, as the PHC format allows.
func parseArgon2id(s string) (*hash, error) {
	f := strings.Split(s, "$") // "", "argon2id", [v=19], params, salt, key
	if len(f) > 2 && strings.HasPrefix(f[2], "v=") {
		if v := f[2][2:]; v != strconv.Itoa(argon2.Version) {
			return nil, fmt.Errorf("bad argon2id hash: unsupported version %q", v)
		}
		f = append(f[:2], f[3:]...)
	}
	if len(f) != 5 {
		return nil, errors.New("bad argon2id hash: want $argon2id$v=19$m=M,t=T,p=P$salt$hash")
	}
	var h hash
	var seen [3]bool
	for kv := range strings.SplitSeq(f[2], ",") {
		k, v, _ := strings.Cut(kv, "=")
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || (v != "0" && v[0] == '0') {
			return nil, fmt.Errorf("bad argon2id hash: parameter %q", kv)
		}
		i := strings.Index("mtp", k)
		if len(k) != 1 || i < 0 {
			return nil, fmt.Errorf("bad argon2id hash: unknown parameter %q", kv)
		}
		if seen[i] {
			return nil, fmt.Errorf("bad argon2id hash: parameter %q given twice", k)
		}
		seen[i] = true
		switch k {
		case "m":
			h.params.memory = uint32(n)
		case "t":
			h.params.time = uint32(n)
		case "p":
			if n > 255 {
				return nil, fmt.Errorf("bad argon2id hash: p=%d above 255", n)
			}
			h.params.threads = uint8(n)
		}
	}
	p := h.params
	switch {
	case seen != [3]bool{true, true, true}:
		return nil, errors.New("bad argon2id hash: want the parameters m, t and p")
	case p.time < 1 || p.threads < 1:
		return nil, errors.New("bad argon2id hash: t and p must be at least 1")
	case p.memory < 8*uint32(p.threads):
		return nil, errors.New("bad argon2id hash: m must be at least 8*p")
	case p.memory > maxMemory:
		return nil, fmt.Errorf("bad argon2id hash: m=%d above %d KiB", p.memory, maxMemory)
	}
	var err error
	if h.salt, err = b64.DecodeString(f[3]); err != nil || len(h.salt) < minSaltLen {
		return nil, fmt.Errorf("bad argon2id hash: salt must be base64 of at least %d bytes", minSaltLen)
	}
	if h.key, err = b64.DecodeString(f[4]); err != nil || len(h.key) < minKeyLen {
		return nil, fmt.Errorf("bad argon2id hash: hash must be base64 of at least %d bytes", minKeyLen)
	}
	return &h, nil
}
