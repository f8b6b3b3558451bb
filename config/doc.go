// Package config is Avocet's configuration file: the TOML schema as Go
// types, the default of every key, and validation whose errors name the
// file, the line and the key.
//
// A file is one TOML document with the tables [node], [log], [store],
// [auth], [admin], [mqtt] and [cluster] and the arrays of tables
// [[listener]], [[bridge]] and [[bridge.topic]]; avocet.example.toml at the
// root of the repository shows every key with its default. Keys the file
// leaves out keep their defaults (Default), and keys the schema does not
// know are errors, compared with case. A [[listener]] array replaces the two
// default listeners (tcp 0.0.0.0:1883 and ws 0.0.0.0:8080/mqtt); each
// [[listener]], [[bridge]] and [[bridge.topic]] entry starts from defaults
// of its own.
//
// Durations are strings such as "10s" or integer seconds (Duration); sizes
// are strings such as "32MiB" or integer bytes (ByteSize); a bridge address
// is one string or an array of them (StringList).
//
// Load and Parse report every problem as an *Error: "avocet.toml:12:
// mqtt.max_inflight: must be between 1 and 65535, got 0". Key paths number
// array entries from 0, as in "listener[1].cert_file"; a problem about a key
// the file lacks is reported at the line of the entry's header. Lines come
// from the TOML library for syntax errors and from a scan of the document
// for everything else, since the library does not export key positions.
//
// The package checks values only. It does not read the certificate,
// password or ACL files a configuration names, nor bind its addresses, and
// it imports nothing of Avocet but the mqtt package's topic filter rules;
// cmd/avocet turns a Config into the options of the other packages.
package config
