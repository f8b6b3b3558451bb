package store

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
)

// Fsync is when the store makes its writes durable with fsync(2).
type Fsync int

// The fsync policies, as [store] fsync names them.
const (
	// Always syncs the file after every batch, before the batch's barriers are
	// called: nothing acknowledged is lost when the machine crashes.
	Always Fsync = iota + 1
	// EverySec leaves the file to BuntDB, which syncs it once a second: a barrier
	// is called once its batch is written to the operating system, so a process
	// crash loses nothing acknowledged and a machine crash about a second.
	EverySec
	// Never leaves syncing to the operating system (and to Close).
	Never
)

// String returns the name used in the config file: "always", "everysec" or
// "never".
func (f Fsync) String() string {
	switch f {
	case Always:
		return "always"
	case EverySec:
		return "everysec"
	case Never:
		return "never"
	}
	return "Fsync(" + strconv.Itoa(int(f)) + ")"
}

// ParseFsync returns the policy named s, as String spells it.
func ParseFsync(s string) (Fsync, error) {
	for _, f := range []Fsync{Always, EverySec, Never} {
		if s == f.String() {
			return f, nil
		}
	}
	return 0, fmt.Errorf("store: unknown fsync policy %q (want always, everysec or never)", s)
}

// Defaults for the Options left zero.
const (
	DefaultShrinkPercentage = 100
	DefaultShrinkMinSize    = 32 << 20
	DefaultMaxBatch         = 1024
	DefaultQueueSize        = 65536
)

// Options configure Open. Only Dir is required; a zero field takes its default.
type Options struct {
	// Dir holds the data file, avocet.db, and the lock file, avocet.lock. Open
	// creates it (mode 0700) when it does not exist.
	Dir string
	// Fsync is the sync policy; zero means EverySec.
	Fsync Fsync
	// ShrinkPercentage is BuntDB's AutoShrinkPercentage: the file is rewritten
	// once it has grown by this percentage since the last rewrite. Zero means
	// DefaultShrinkPercentage.
	ShrinkPercentage int
	// ShrinkMinSize is BuntDB's AutoShrinkMinSize: no rewrite while the file is
	// smaller, in bytes. Zero means DefaultShrinkMinSize.
	ShrinkMinSize int64
	// MaxBatch is how many changes (Sets and Deletes) one BuntDB Update applies
	// at most. Zero means DefaultMaxBatch.
	MaxBatch int
	// QueueSize is how many changes and barriers may wait for the writer before
	// Set, Delete and Barrier block until it catches up. Zero means
	// DefaultQueueSize.
	QueueSize int
	// Logger receives write failures and recoveries and the dropping of a torn
	// last record at Open. Nil discards them.
	Logger *slog.Logger
}

// withDefaults returns o with its zero fields set, or an error for a field out
// of range.
func (o Options) withDefaults() (Options, error) {
	if o.Dir == "" {
		return o, errors.New("store: no directory")
	}
	if o.Fsync == 0 {
		o.Fsync = EverySec
	}
	if o.Fsync < Always || o.Fsync > Never {
		return o, fmt.Errorf("store: invalid fsync policy %v", o.Fsync)
	}
	if o.ShrinkPercentage == 0 {
		o.ShrinkPercentage = DefaultShrinkPercentage
	}
	if o.ShrinkMinSize == 0 {
		o.ShrinkMinSize = DefaultShrinkMinSize
	}
	if o.MaxBatch == 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.QueueSize == 0 {
		o.QueueSize = DefaultQueueSize
	}
	switch {
	case o.ShrinkPercentage < 0:
		return o, fmt.Errorf("store: negative shrink percentage %d", o.ShrinkPercentage)
	case o.ShrinkMinSize < 0:
		return o, fmt.Errorf("store: negative shrink minimum size %d", o.ShrinkMinSize)
	case o.MaxBatch < 0:
		return o, fmt.Errorf("store: negative batch size %d", o.MaxBatch)
	case o.QueueSize < 0:
		return o, fmt.Errorf("store: negative queue size %d", o.QueueSize)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}
