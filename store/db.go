package store

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidwall/buntdb"
)

// FileName is the name of the data file in Options.Dir; LockFileName is the
// file locked while a DB is open.
const (
	FileName     = "avocet.db"
	LockFileName = "avocet.lock"
)

var (
	// ErrClosed is returned by the methods of a closed DB, and passed to the
	// callbacks of barriers made after Close.
	ErrClosed = errors.New("store: closed")
	// ErrLocked is returned, wrapped with the lock file's path, by Open when
	// another process has the store open.
	ErrLocked = errors.New("store: in use by another process")
)

// Retry delays after a batch fails to be written or synced.
const (
	minRetryDelay = 10 * time.Millisecond
	maxRetryDelay = time.Second
)

// scanChunk is how many records Scan copies out of BuntDB per read
// transaction, so that fn runs without BuntDB's lock held.
const scanChunk = 256

// DB is the BuntDB store: a session.Store, and through Retained a retain.Store.
// Its methods may be called from any goroutine.
type DB struct {
	path  string       // of the data file; read-only
	opts  Options      // read-only after Open
	log   *slog.Logger // read-only
	bdb   *buntdb.DB   // safe for concurrent use; written only by the writer goroutine
	file  *dataFile    // owned by the writer goroutine, then by Close
	lock  *os.File     // the locked avocet.lock; owned by Close
	queue *queue       // safe for concurrent use

	closing chan struct{} // closed when Close begins
	done    chan struct{} // closed when the writer goroutine has returned

	closeOnce sync.Once
	closeErr  error // set by the first Close
	drainErr  error // the last failure to write while closing; written by the writer before done

	// Counters for Stats, written by the writer goroutine (rejected by callers).
	batches     atomic.Int64
	changes     atomic.Int64
	barriers    atomic.Int64
	bytes       atomic.Int64
	failures    atomic.Int64
	rejected    atomic.Int64
	lastBatchNs atomic.Int64
}

// Open opens the store in opts.Dir, creating the directory and the file if
// need be, and starts its writer goroutine. It fails, naming the file, when the
// file cannot be read or is not a BuntDB file: it never starts empty in place
// of data it could not read. A last record cut short by a crash is dropped, and
// logged.
func Open(opts Options) (*DB, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	lock, err := lockDir(filepath.Join(opts.Dir, LockFileName))
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	db, err := open(opts, lock)
	if err != nil {
		_ = lock.Close() // unlocks; nothing written
		return nil, err
	}
	go db.run()
	return db, nil
}

func open(opts Options, lock *os.File) (*DB, error) {
	path := filepath.Join(opts.Dir, FileName)
	if err := checkFile(path, opts.Logger); err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, samePath(err, path))
	}
	bdb, err := buntdb.Open(path)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, samePath(err, path))
	}
	// Under Always the writer syncs through its own descriptor after each
	// batch, outside BuntDB's lock and with the error seen; letting BuntDB sync
	// as well would pay for a second device flush per batch.
	policy := buntdb.Never
	if opts.Fsync == EverySec {
		policy = buntdb.EverySecond
	}
	minSize := opts.ShrinkMinSize
	if minSize > math.MaxInt {
		minSize = math.MaxInt
	}
	cfg := buntdb.Config{
		SyncPolicy:           policy,
		AutoShrinkPercentage: opts.ShrinkPercentage,
		AutoShrinkMinSize:    int(minSize),
		AutoShrinkDisabled:   false,
	}
	if err := bdb.SetConfig(cfg); err != nil {
		return nil, errors.Join(fmt.Errorf("store: open %s: %w", path, err), bdb.Close())
	}
	file, err := openDataFile(path)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("store: open %s: %w", path, err), bdb.Close())
	}
	return &DB{
		path:    path,
		opts:    opts,
		log:     opts.Logger.With("path", path),
		bdb:     bdb,
		file:    file,
		lock:    lock,
		queue:   newQueue(opts.QueueSize),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
	}, nil
}

// samePath drops the path from an error about path, which the caller names.
func samePath(err error, path string) error {
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Path == path {
		return pe.Err
	}
	return err
}

// checkFile checks the framing of the file at path, if there is one, before
// BuntDB loads it (see checkAOF), and logs a torn last record, which BuntDB
// will drop.
func checkFile(path string, log *slog.Logger) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close() // read-only
	torn, err := checkAOF(f)
	if err != nil {
		return err
	}
	if torn >= 0 {
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		log.Warn("store: dropping the incomplete last record of the file",
			"path", path, "offset", torn, "bytes", fi.Size()-torn)
	}
	return nil
}

// Path returns the path of the data file.
func (db *DB) Path() string { return db.path }

// Set queues key to be set to value; the DB owns value from now on. It blocks
// while the queue is full. After Close it does nothing (and counts the change
// in Stats.Rejected).
func (db *DB) Set(key string, value []byte) {
	_ = db.put(key, value)
}

// Delete queues key to be removed. It blocks while the queue is full. After
// Close it does nothing (and counts the change in Stats.Rejected).
func (db *DB) Delete(key string) {
	_ = db.del(key)
}

func (db *DB) put(key string, value []byte) error {
	return db.push(entry{op: opSet, key: key, val: string(value)})
}

func (db *DB) del(key string) error {
	return db.push(entry{op: opDelete, key: key})
}

func (db *DB) push(e entry) error {
	if !db.queue.push(e) {
		db.rejected.Add(1)
		return ErrClosed
	}
	return nil
}

// Barrier queues fn to be called from the writer goroutine once every change
// queued before it has been written and, under Always, synced. err is the
// failure of the batch that held fn, if it failed; a batch that fails is
// retried, so a later barrier's nil err means the earlier changes did reach the
// file in the end. Barrier blocks while the queue is full. After Close it calls
// fn with ErrClosed at once, from a goroutine of its own, so that a caller may
// hold a lock that fn takes.
func (db *DB) Barrier(fn func(err error)) {
	if !db.queue.push(entry{op: opBarrier, fn: fn}) {
		go fn(ErrClosed)
	}
}

// Scan calls fn for every key with the given prefix, in key order, with its
// value as last written to the DB; changes still queued are not seen. value is
// valid only until fn returns. fn runs without any lock of the DB held, so it may
// call the DB (changes it makes to keys not yet scanned may or may not be seen).
// Scan returns fn's first error, or ErrClosed after Close.
func (db *DB) Scan(prefix string, fn func(key string, value []byte) error) error {
	var (
		keys, vals []string
		buf        []byte
		from       = prefix
		after      = false // skip from itself: it was the last key of the previous chunk
	)
	for {
		keys, vals = keys[:0], vals[:0]
		err := db.bdb.View(func(tx *buntdb.Tx) error {
			return tx.AscendGreaterOrEqual("", from, func(k, v string) bool {
				if after && k == from {
					return true
				}
				if !strings.HasPrefix(k, prefix) || len(keys) == scanChunk {
					return false
				}
				keys, vals = append(keys, k), append(vals, v)
				return true
			})
		})
		if errors.Is(err, buntdb.ErrDatabaseClosed) {
			return ErrClosed
		}
		if err != nil {
			return fmt.Errorf("store: scan %q: %w", prefix, err)
		}
		for i, k := range keys {
			buf = append(buf[:0], vals[i]...)
			if err := fn(k, buf); err != nil {
				return err
			}
		}
		if len(keys) < scanChunk {
			return nil
		}
		from, after = keys[len(keys)-1], true
	}
}

// run is the writer goroutine: it takes a batch of queued entries, applies its
// changes in one BuntDB Update, syncs under Always, and then calls the batch's
// barriers in order. It returns once the DB is closing and the queue is empty.
func (db *DB) run() {
	defer close(db.done)
	var (
		batch    []entry
		retry    []entry // the changes of the batch that failed last, written first
		fails    int     // batches failed in a row
		delay    = minRetryDelay
		followed = time.Now() // when the data file was last followed
	)
	for {
		if len(retry) > 0 {
			select {
			case <-time.After(delay):
				delay = min(2*delay, maxRetryDelay)
			case <-db.closing:
			}
		}
		var done bool
		batch = append(batch[:0], retry...)
		batch, done = db.queue.take(batch, max(db.opts.MaxBatch-len(retry), 0), len(retry) == 0)
		if len(batch) == 0 {
			if done {
				return
			}
			continue
		}
		err := db.write(batch, len(retry) > 0)
		if db.opts.Fsync != Always && time.Since(followed) >= time.Second {
			followed = time.Now()
			if ferr := db.file.follow(); ferr != nil {
				db.log.Error("store: following the data file", "error", ferr)
			}
		}
		clear(retry)
		retry = retry[:0]
		for i := range batch {
			if batch[i].op == opBarrier {
				db.barriers.Add(1)
				batch[i].fn(err)
			}
		}
		switch {
		case err == nil:
			if fails > 0 {
				db.log.Info("store: writes succeed again", "failed_batches", fails)
			}
			fails, delay = 0, minRetryDelay
		case isClosing(db.closing):
			db.drainErr = err
			db.log.Error("store: changes lost at close", "changes", countChanges(batch), "error", err)
		default:
			if fails == 0 {
				db.log.Error("store: write failed; retrying", "error", err)
			}
			fails++
			for _, e := range batch {
				if e.op != opBarrier {
					retry = append(retry, e)
				}
			}
		}
		clear(batch)
	}
}

// write applies the changes of batch in order in one Update and, under Always,
// syncs the file. resync is set when the batch repeats one that failed, maybe
// after BuntDB had applied it in memory: each Delete is then written to the file
// even if the key is already gone.
func (db *DB) write(batch []entry, resync bool) error {
	n := countChanges(batch)
	if n == 0 {
		return nil
	}
	start := time.Now()
	var bytes int64
	err := db.bdb.Update(func(tx *buntdb.Tx) error {
		for i := range batch {
			e := &batch[i]
			switch e.op {
			case opSet:
				if _, _, err := tx.Set(e.key, e.val, nil); err != nil {
					return fmt.Errorf("set %q: %w", e.key, err)
				}
				bytes += int64(len(e.key) + len(e.val))
			case opDelete:
				if resync {
					if _, _, err := tx.Set(e.key, "", nil); err != nil {
						return fmt.Errorf("delete %q: %w", e.key, err)
					}
				}
				if _, err := tx.Delete(e.key); err != nil && !errors.Is(err, buntdb.ErrNotFound) {
					return fmt.Errorf("delete %q: %w", e.key, err)
				}
				bytes += int64(len(e.key))
			}
		}
		return nil
	})
	if err != nil {
		err = fmt.Errorf("store: write %s: %w", db.path, err)
	} else if db.opts.Fsync == Always {
		if err = db.file.sync(); err != nil {
			err = fmt.Errorf("store: %w", err)
		}
	}
	db.lastBatchNs.Store(int64(time.Since(start)))
	db.batches.Add(1)
	if err != nil {
		db.failures.Add(1)
		return err
	}
	db.changes.Add(int64(n))
	db.bytes.Add(bytes)
	return nil
}

func countChanges(batch []entry) int {
	n := 0
	for i := range batch {
		if batch[i].op != opBarrier {
			n++
		}
	}
	return n
}

func isClosing(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// Close stops accepting changes, writes everything already queued, calls the
// pending barriers, and closes the file. Its error joins a failure to write
// the last changes, BuntDB's Close error and a failure of the final fsync. Later
// calls return ErrClosed. Set, Delete and Barrier after Close do not block.
func (db *DB) Close() error {
	err := ErrClosed
	db.closeOnce.Do(func() {
		db.queue.close()
		close(db.closing)
		<-db.done
		var errs []error
		if db.drainErr != nil {
			errs = append(errs, db.drainErr)
		}
		if cerr := db.bdb.Close(); cerr != nil {
			errs = append(errs, fmt.Errorf("store: close %s: %w", db.path, cerr))
		}
		if serr := db.file.close(); serr != nil {
			errs = append(errs, fmt.Errorf("store: close: %w", serr))
		}
		if lerr := db.lock.Close(); lerr != nil {
			errs = append(errs, fmt.Errorf("store: close %s: %w", db.lock.Name(), lerr))
		}
		db.closeErr = errors.Join(errs...)
		err = db.closeErr
	})
	return err
}

// Stats are counters of a DB since Open, for metrics.
type Stats struct {
	Batches      int64         // Updates run, failed ones included
	Changes      int64         // Sets and Deletes written
	Barriers     int64         // barrier callbacks called by the writer
	BytesWritten int64         // keys and values of the changes written
	Failures     int64         // batches that failed to be written or synced
	Rejected     int64         // Sets and Deletes refused after Close
	Blocked      int64         // Sets, Deletes and Barriers that waited for room in the queue
	Pending      int           // changes and barriers queued, not yet taken by the writer
	LastBatch    time.Duration // how long the last batch took to write and sync
	FileSize     int64         // the data file's size now; 0 if it cannot be read
}

// Stats returns the DB's counters. It may be called at any time, after Close
// too.
func (db *DB) Stats() Stats {
	pending, blocked := db.queue.stats()
	s := Stats{
		Batches:      db.batches.Load(),
		Changes:      db.changes.Load(),
		Barriers:     db.barriers.Load(),
		BytesWritten: db.bytes.Load(),
		Failures:     db.failures.Load(),
		Rejected:     db.rejected.Load(),
		Blocked:      blocked,
		Pending:      pending,
		LastBatch:    time.Duration(db.lastBatchNs.Load()),
	}
	if fi, err := os.Stat(db.path); err == nil {
		s.FileSize = fi.Size()
	}
	return s
}
