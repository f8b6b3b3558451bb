// Package store keeps the broker's durable state in BuntDB
// (github.com/tidwall/buntdb): the records of persistent sessions, as a
// session.Store, and the retained messages, as a retain.Store. It is the only
// package that imports BuntDB. [Mem] is its in-memory twin, for the tests of
// other packages.
//
// # Keys
//
// One BuntDB file, avocet.db in the configured directory, holds every record;
// the first bytes of a key say whose it is. Package session owns the keys that
// begin "m/", "s/", "q/", "i/" and "p/" and the form of their values.
// Retained messages are kept under "r/" and the topic name, valued with
// (*mqtt.Message).AppendBinary. avocet.lock, locked while the store is open,
// keeps a second process from opening the same file.
//
// # Group commit
//
// Set, Delete and Barrier only queue what they ask for, and return. One writer
// goroutine takes what is queued, up to Options.MaxBatch changes, applies the
// changes in order in one BuntDB Update (one write(2) to the file), syncs it if
// the policy says so, and then calls, in order, the callbacks of the barriers
// that were queued among or right after those changes. Many goroutines waiting
// on their barriers thus share each write and each fsync. The queue is bounded
// (Options.QueueSize): when it is full, Set, Delete and Barrier wait for the
// writer, so a broker that publishes faster than the disk writes is slowed to
// the disk's pace (Stats.Blocked counts the waits).
//
// A batch that cannot be written or synced passes the error to its barriers'
// callbacks, is logged, and is written again, first, after a pause; a barrier
// called with nil therefore means that everything queued before it is in the
// file. Only the changes before a barrier whose callback got nil are promised:
// BuntDB writes the records of one Update in no particular order, so a crash
// in the middle of a write may keep some changes of that batch and not others.
// Each record must therefore make sense on its own.
//
// # Fsync policy
//
//   - "always" ([Always]): the writer fsyncs the file after each batch, before
//     calling the batch's barriers, so nothing acknowledged is lost when the
//     process or the machine crashes. A batch costs one device flush, shared by
//     everything in it.
//   - "everysec" ([EverySec], the default): a barrier's callback runs once its
//     batch has been written to the operating system; BuntDB fsyncs the file
//     every second. A process crash loses nothing acknowledged; a machine crash
//     may lose about the last second.
//   - "never" ([Never]): the same, but the operating system decides when the
//     file reaches the disk. Close still syncs.
//
// # The file
//
// BuntDB's file is an append-only log of SET and DEL commands in the Redis
// protocol, rewritten in the background once it has grown by
// Options.ShrinkPercentage since the last rewrite and is larger than
// Options.ShrinkMinSize. Open refuses a file it cannot read or that is not such
// a log, naming the file; it does not start empty in its place. A last record
// cut short by a crash is dropped with a warning, as BuntDB does.
//
// Package store does not decide what is written, nor when a barrier is needed:
// the session and retain packages do.
package store
