package config

import (
	"fmt"
	"io"
	"reflect"
	"slices"

	"github.com/BurntSushi/toml"
)

// Masked replaces every secret that is set when Write prints a configuration.
const Masked = "********"

// Write prints the configuration as TOML, every available key included, for
// `avocet --print-config`. Secrets that are set (the admin token, the
// cluster secret, bridge passwords) are printed as Masked: the output is
// meant to be read and shared, so it deliberately does not round-trip until
// the real secrets are put back.
//
// The tables and keys of features this version lacks are left out, so that
// the output shows no key that does nothing; Parse gives them their
// defaults. Everything else parses back to c, when c is valid.
func (c *Config) Write(w io.Writer) error {
	out := c.clone()
	mask(&out.Admin.Token)
	mask(&out.Cluster.Secret)
	for i := range out.Bridges {
		mask(&out.Bridges[i].Password)
	}
	v := reflect.ValueOf(out).Elem()
	shown := availableValue(v, availableType("", v.Type()))
	if _, err := fmt.Fprintf(w, "# Avocet configuration in effect. Secrets that are set read %q.\n\n", Masked); err != nil {
		return err
	}
	enc := toml.NewEncoder(w)
	enc.Indent = ""
	return enc.Encode(shown.Interface())
}

func mask(s *string) {
	if *s != "" {
		*s = Masked
	}
}

// clone copies c deeply enough that changing the copy leaves c as it was.
func (c *Config) clone() *Config {
	out := *c
	out.Listeners = slices.Clone(c.Listeners)
	out.Cluster.Seeds = slices.Clone(c.Cluster.Seeds)
	out.Bridges = slices.Clone(c.Bridges)
	for i := range out.Bridges {
		out.Bridges[i].Addresses = slices.Clone(out.Bridges[i].Addresses)
		out.Bridges[i].Topics = slices.Clone(out.Bridges[i].Topics)
	}
	return &out
}
