// Package fileutil reads, watches and writes the files Avocet's auth and tls
// packages keep in memory: password and ACL files, certificates and keys.
//
// ReadFile returns a file's contents with a Stamp of the version read, and
// Watch polls files by their stamps (identity, size and modification time),
// calling a reload function once a change has settled. Polling needs no file
// system notification, so it works the same on every platform and through bind
// mounts. WriteAtomic replaces a file so that a reader sees the old contents
// or the new, never a part, and the change survives a crash.
//
// It is not a general file library: it knows nothing of the formats it reads
// or writes, and it does not lock files against other writers.
package fileutil
