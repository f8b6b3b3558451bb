// Command avocet runs the Avocet MQTT broker.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run parses args, starts the listeners and blocks until SIGINT or SIGTERM.
// It returns the process exit code.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("avocet", flag.ContinueOnError)
	fs.SetOutput(stderr)
	mqttAddr := fs.String("mqtt", "0.0.0.0:1883", "MQTT over TCP listen address (empty disables)")
	wsAddr := fs.String("ws", "0.0.0.0:8080", "MQTT over WebSocket listen address (empty disables)")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *showVersion {
		fmt.Fprintf(stdout, "avocet %s\n", version)
		return 0
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	srv := &server{log: log, version: version}
	if err := srv.listen(*mqttAddr, *wsAddr); err != nil {
		log.Error("start-up failed", "err", err)
		return 1
	}
	fmt.Fprintf(stdout, "avocet %s\n", version)
	for _, l := range srv.listeners {
		fmt.Fprintf(stdout, "listening %s %s\n", l.kind, l.ln.Addr())
	}
	<-ctx.Done()
	log.Info("shutting down")
	srv.close()
	log.Info("stopped")
	return 0
}
