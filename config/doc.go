// Package config is Avocet's configuration file: the TOML schema as Go
// types, the default of every key, the environment variables that override
// keys, and validation whose errors name the file and line, or the
// variable, and the key.
//
// A file is one TOML document with the tables [node], [log], [store],
// [auth], [admin], [mqtt] and [cluster] and the arrays of tables
// [[listener]], [[bridge]] and [[bridge.topic]]; avocet.example.toml at the
// root of the repository shows every key with its default, but for the
// unavailable ones below. Keys the file leaves out keep their defaults
// (Default), and keys the schema does not know are errors, compared with
// case. A [[listener]] array replaces the two default listeners (tcp
// 0.0.0.0:1883 and ws 0.0.0.0:8080/mqtt); each [[listener]], [[bridge]] and
// [[bridge.topic]] entry starts from defaults of its own.
//
// Durations are strings such as "10s" or integer seconds (Duration); sizes
// are strings such as "32MiB" or integer bytes (ByteSize); a bridge address
// is one string or an array of them (StringList).
//
// # Unavailable keys
//
// A section arrives with its feature: no key does nothing. The schema may
// hold keys of features a version does not have yet, listed in
// unavailable.go; this version has every feature, so the list is empty.
// Setting such a key to anything but its default, in the file or the
// environment, is an error, "not available in this version of avocet", and
// so is any entry of such an array of tables. Write leaves them out, and the
// example file does not show them.
//
// # Cluster
//
// [cluster] enabled makes the node one of a cluster; it then needs a [node]
// name of its own, since nodes tell each other apart by name. The links
// between nodes use TLS with mutual authentication when link_tls_cert and
// link_tls_key are set (both or neither), verifying peers against
// link_tls_ca, which they then require.
//
// # Environment
//
// LoadEnv, ParseEnv and FromEnv take the environment, as os.Environ gives
// it; Load and Parse do not read it. After the file (or, for FromEnv, the
// defaults) is decoded and before derived defaults are filled in and the
// result is validated, each variable named
//
//	AVOCET_<TABLE>_<KEY>            AVOCET_MQTT_MAX_INFLIGHT=200
//	AVOCET_LISTENERS_<KIND>_<KEY>   AVOCET_LISTENERS_TCP_ADDRESS=0.0.0.0:1884
//
// sets one key: TABLE is node, log, store, auth, admin, mqtt or cluster,
// KIND is tcp, tls, ws or wss, and KEY is the key, all in upper case
// (AVOCET_STORE_DIR, AVOCET_AUTH_ALLOW_ANONYMOUS, AVOCET_LISTENERS_WS_PATH,
// AVOCET_LISTENERS_TLS_CERT_FILE). A listener variable sets its key in
// every listener of its kind. When there is no listener of the kind, an
// ADDRESS variable adds one at that address, after the file's listeners or
// the default ones; the other variables of the kind then set its other
// keys, which otherwise keep their defaults. Any other variable of a kind
// without a listener is an error. A listener's kind has no variable, and
// neither have [[bridge]] and [[bridge.topic]].
//
// A value is read as the file's value would be for its key: integers in
// decimal; booleans as true or false; durations as "10s" or integer seconds;
// sizes as "32MiB" or integer bytes; lists, such as AVOCET_CLUSTER_SEEDS, as
// comma-separated elements (empty text is the empty list); strings, enums
// included, as they stand, and enums are checked by validation as in a
// file. Spaces around a number, a boolean or a list element do not count.
//
// Variables not beginning AVOCET_ are skipped, and so is AVOCET_CONFIG,
// kept for naming the configuration file. Any other AVOCET_ variable that
// names no key is an error, with a hint at the closest name.
//
// # Errors
//
// Load and Parse report every problem as an *Error: "avocet.toml:12:
// mqtt.max_inflight: must be between 1 and 65535, got 0". Key paths number
// array entries from 0, as in "listener[1].cert_file"; a problem about a key
// the file lacks is reported at the line of the entry's header. Lines come
// from the TOML library for syntax errors and from a scan of the document
// for everything else, since the library does not export key positions. A
// problem with a key a variable set names the variable instead, "env
// AVOCET_MQTT_MAX_INFLIGHT: mqtt.max_inflight: must be between 1 and
// 65535, got 0", and so does a problem with a listener an ADDRESS variable
// added.
//
// The package checks values only. It does not read the certificate,
// password or ACL files a configuration names, nor bind its addresses, and
// it imports nothing of Avocet but the mqtt package's topic filter rules;
// cmd/avocet turns a Config into the options of the other packages.
package config
