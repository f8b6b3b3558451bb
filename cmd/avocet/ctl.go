package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/BurntSushi/toml"

	"github.com/avocet-mqtt/avocet/admin"
	"github.com/avocet-mqtt/avocet/bridge"
	"github.com/avocet-mqtt/avocet/broker"
)

// Exit codes of `avocet ctl`.
const (
	ctlExitOK       = 0
	ctlExitFailed   = 1 // the API answered with an error, or could not be reached
	ctlExitUsage    = 2 // the command line is wrong
	ctlExitNotFound = 3 // the API answered 404: no such session, listener, retained message
)

// ctlDefaultAdmin is the admin API's address when --admin is not given: the
// default [admin] address of the broker.
const ctlDefaultAdmin = "http://127.0.0.1:8888"

// ctlMaxBody caps what ctl reads of one answer of the API.
const ctlMaxBody = 64 << 20

// ctlCommand is one command of `avocet ctl`.
type ctlCommand struct {
	name string   // the words that select it, as in "session list"
	args string   // its parameters as the usage shows them
	help string   // what it does, in one line
	keys []string // the parameters it takes
	need []string // those of keys it requires
	// rest is the parameter of keys that words after the name give, joined
	// by commas, as in `cluster join a:7946 b:7946`; empty: no such words.
	rest string
	run  func(ctx context.Context, c *ctlClient, p map[string]string) error
}

// ctlCommands lists every command, in the order the usage shows them.
var ctlCommands = []ctlCommand{
	{name: "status", help: "the node at a glance: connections, sessions, messages, store, bridges, listeners",
		run: ctlStatus},
	{name: "session list", args: "[client-id=GLOB] [username=U] [online=true|false] [limit=N] [offset=N]",
		help: "sessions, online or not; GLOB takes * and ?",
		keys: []string{"client-id", "username", "online", "limit", "offset"}, run: ctlSessionList},
	{name: "session show", args: "client-id=X", help: "one session and its subscriptions",
		keys: []string{"client-id"}, need: []string{"client-id"}, run: ctlSessionShow},
	{name: "session disconnect", args: "client-id=X", help: "close the client's connection (5.0: DISCONNECT 0x98)",
		keys: []string{"client-id"}, need: []string{"client-id"}, run: ctlSessionDisconnect},
	{name: "session delete", args: "client-id=X", help: "disconnect the client and remove its session",
		keys: []string{"client-id"}, need: []string{"client-id"}, run: ctlSessionDelete},
	{name: "subscription list", args: "[client-id=GLOB] [filter=F] [topic=T] [limit=N] [offset=N]",
		help: "subscriptions; topic=T shows those that receive T",
		keys: []string{"client-id", "filter", "topic", "limit", "offset"}, run: ctlSubscriptionList},
	{name: "retained list", args: "[filter=F] [limit=N] [offset=N]", help: "retained messages whose topic matches F (default #)",
		keys: []string{"filter", "limit", "offset"}, run: ctlRetainedList},
	{name: "retained delete", args: "topic=T", help: "delete the retained message of topic T",
		keys: []string{"topic"}, need: []string{"topic"}, run: ctlRetainedDelete},
	{name: "listener list", help: "listeners, running or stopped", run: ctlListenerList},
	{name: "listener stop", args: "name=N", help: "stop accepting on a listener; its connections stay",
		keys: []string{"name"}, need: []string{"name"}, run: ctlListenerStop},
	{name: "listener start", args: "name=N", help: "start a stopped listener",
		keys: []string{"name"}, need: []string{"name"}, run: ctlListenerStart},
	{name: "bridge list", args: "[limit=N] [offset=N]", help: "bridges: connected or not, queued and forwarded messages",
		keys: []string{"limit", "offset"}, run: ctlBridgeList},
	{name: "config show", help: "the configuration in effect, secrets masked", run: ctlConfigShow},
	{name: "drain", help: "stop the listeners and disconnect every client (5.0: 0x8B); the process stays",
		run: ctlDrain},
	{name: "trace", args: "client-id=X", help: "follow the packets of one client live until Ctrl-C",
		keys: []string{"client-id"}, need: []string{"client-id"}, run: ctlTrace},
	{name: "cluster show", help: "the cluster as this node sees it: members and their state, links to the other nodes",
		run: ctlClusterShow},
	{name: "cluster join", args: "HOST:PORT...", help: "contact these gossip addresses (or seeds=A,B) and merge with their cluster",
		keys: []string{"seeds"}, need: []string{"seeds"}, rest: "seeds", run: ctlClusterJoin},
	{name: "cluster leave", help: "leave the cluster for good, handing offline sessions over; the node then shuts down",
		run: ctlClusterLeave},
}

// ctlUsage prints how to call `avocet ctl`.
func ctlUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: avocet ctl [--admin URL] [--token T | --token-file F] [--json] [--timeout D] COMMAND [key=value ...]\n\n")
	fmt.Fprintf(w, "Speaks to the admin API of a running avocet. Parameters are key=value (client-id=X) or\n")
	fmt.Fprintf(w, "flags (--client-id X, --client_id=X). Exit status: 0 done, 1 the API answered with an error\n")
	fmt.Fprintf(w, "or could not be reached, 2 usage error, 3 not found.\n\nCommands:\n")
	for _, c := range ctlCommands {
		fmt.Fprintf(w, "  %s\n      %s\n", strings.TrimSpace(c.name+" "+c.args), c.help)
	}
	fmt.Fprintf(w, "\nFlags:\n")
	fs.SetOutput(w)
	fs.PrintDefaults()
}

// ctlUsageError is a wrong command line; ctl answers it with the usage.
type ctlUsageError struct{ msg string }

func (e *ctlUsageError) Error() string { return e.msg }

func usageErrorf(format string, a ...any) error {
	return &ctlUsageError{msg: fmt.Sprintf(format, a...)}
}

// ctlAPIError is an error answer of the API.
type ctlAPIError struct {
	status int
	msg    string // the answer's "error", or its status text
}

func (e *ctlAPIError) Error() string { return e.msg }

// runCtl is `avocet ctl`. It returns the process exit code.
func runCtl(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("avocet ctl", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // runCtl prints the errors and the usage itself
	adminURL := fs.String("admin", ctlDefaultAdmin, "`URL` of the admin API")
	token := fs.String("token", "", "bearer `token` of the admin API (visible to other local users; prefer --token-file)")
	tokenFile := fs.String("token-file", "", "read the token from `file`")
	asJSON := fs.Bool("json", false, "print the API's JSON (a trace: its NDJSON lines) instead of tables")
	timeout := fs.Duration("timeout", 10*time.Second, "give up on a request after this `duration` (a trace: on its start)")

	usage := func(err error) int {
		fmt.Fprintf(stderr, "avocet ctl: %v\n\n", err)
		ctlUsage(stderr, fs)
		return ctlExitUsage
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			ctlUsage(stdout, fs)
			return ctlExitOK
		}
		return usage(err)
	}
	words, params, err := ctlParams(fs, fs.Args())
	if err != nil {
		return usage(err)
	}
	if len(words) == 0 {
		return usage(errors.New("no command given"))
	}
	if len(words) == 1 && words[0] == "help" {
		ctlUsage(stdout, fs)
		return ctlExitOK
	}
	cmd, err := ctlFind(words, params)
	if err != nil {
		return usage(err)
	}
	c, err := newCtlClient(*adminURL, *token, *tokenFile, *timeout)
	if err != nil {
		var ue *ctlUsageError
		if errors.As(err, &ue) {
			return usage(err)
		}
		fmt.Fprintf(stderr, "avocet ctl: %v\n", err)
		return ctlExitFailed
	}
	c.json, c.stdout, c.stderr = *asJSON, stdout, stderr

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = cmd.run(ctx, c, params)
	var ae *ctlAPIError
	var ue *ctlUsageError
	switch {
	case err == nil:
		return ctlExitOK
	case errors.As(err, &ue):
		return usage(err)
	case errors.As(err, &ae) && ae.status == http.StatusNotFound:
		fmt.Fprintf(stderr, "avocet ctl: %v\n", err)
		return ctlExitNotFound
	case errors.As(err, &ae) && ae.status == http.StatusUnauthorized:
		fmt.Fprintf(stderr, "avocet ctl: %v (give the token with --token-file or --token)\n", err)
		return ctlExitFailed
	default:
		fmt.Fprintf(stderr, "avocet ctl: %v\n", err)
		return ctlExitFailed
	}
}

// ctlParams splits what follows the global flags into the command's words
// and its parameters. A parameter is key=value, --key=value or --key value;
// keys are taken with '-' or '_' alike. The global flags may also come
// after the command, as in `avocet ctl session list --json`.
func ctlParams(fs *flag.FlagSet, args []string) (words []string, params map[string]string, err error) {
	params = map[string]string{}
	set := func(key, value string) error {
		key = strings.ReplaceAll(key, "_", "-")
		if key == "" {
			return usageErrorf("a parameter without a name: %q", key+"="+value)
		}
		if _, dup := params[key]; dup {
			return usageErrorf("%s is given twice", key)
		}
		params[key] = value
		return nil
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return nil, nil, usageErrorf("unexpected %q", a)
		case strings.HasPrefix(a, "-") && len(a) > 1:
			name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
			if f := fs.Lookup(name); f != nil {
				if !hasValue {
					if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() {
						value = "true"
					} else if i+1 < len(args) {
						i++
						value = args[i]
					} else {
						return nil, nil, usageErrorf("flag --%s needs a value", name)
					}
				}
				if err := fs.Set(name, value); err != nil {
					return nil, nil, usageErrorf("flag --%s: %v", name, err)
				}
				continue
			}
			if !hasValue {
				if i+1 >= len(args) {
					return nil, nil, usageErrorf("%s needs a value", a)
				}
				i++
				value = args[i]
			}
			if err := set(name, value); err != nil {
				return nil, nil, err
			}
		case strings.Contains(a, "="):
			key, value, _ := strings.Cut(a, "=")
			if err := set(key, value); err != nil {
				return nil, nil, err
			}
		default:
			words = append(words, a)
		}
	}
	return words, params, nil
}

// ctlFind returns the command that words name and checks its parameters.
// The words after a command's name give its rest parameter, if it has one.
func ctlFind(words []string, params map[string]string) (*ctlCommand, error) {
	name := strings.Join(words, " ")
	var cmd *ctlCommand
	for i := range ctlCommands {
		c := &ctlCommands[i]
		n := strings.Fields(c.name)
		if len(n) > len(words) || !slices.Equal(n, words[:len(n)]) || (len(n) < len(words) && c.rest == "") {
			continue
		}
		cmd = c
		if extra := words[len(n):]; len(extra) > 0 {
			if _, dup := params[c.rest]; dup {
				return nil, usageErrorf("%s is given twice", c.rest)
			}
			params[c.rest] = strings.Join(extra, ",")
		}
		name = c.name
		break
	}
	if cmd == nil {
		return nil, usageErrorf("unknown command %q", name)
	}
	for k := range params {
		if !slices.Contains(cmd.keys, k) {
			if len(cmd.keys) == 0 {
				return nil, usageErrorf("%s takes no parameters, not %s", name, k)
			}
			return nil, usageErrorf("%s takes %s, not %s", name, strings.Join(cmd.keys, ", "), k)
		}
	}
	for _, k := range cmd.need {
		if params[k] == "" {
			return nil, usageErrorf("%s needs %s=...", name, k)
		}
	}
	return cmd, nil
}

// ctlClient calls the admin API and prints its answers.
type ctlClient struct {
	base   string       // the API's URL without a trailing slash
	token  string       // sent as a bearer token when set; never printed
	http   *http.Client // for every request but the trace
	stream *http.Client // for the trace: no deadline once the stream began
	json   bool         // print the API's JSON rather than tables
	stdout io.Writer
	stderr io.Writer
}

func newCtlClient(adminURL, token, tokenFile string, timeout time.Duration) (*ctlClient, error) {
	if !strings.Contains(adminURL, "://") {
		adminURL = "http://" + adminURL
	}
	u, err := url.Parse(adminURL)
	switch {
	case err != nil:
		return nil, usageErrorf("--admin %q: %v", adminURL, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, usageErrorf("--admin %q: the scheme must be http or https", adminURL)
	case u.Host == "":
		return nil, usageErrorf("--admin %q: no host", adminURL)
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return nil, usageErrorf("--admin %q: give only the scheme, host, port and path", adminURL)
	}
	if timeout <= 0 {
		return nil, usageErrorf("--timeout %v is not positive", timeout)
	}
	if tokenFile != "" {
		if token != "" {
			return nil, usageErrorf("give --token or --token-file, not both")
		}
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return nil, fmt.Errorf("token file: %w", err)
		}
		if token = strings.TrimSpace(string(b)); token == "" {
			return nil, fmt.Errorf("token file %s is empty", tokenFile)
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = timeout
	return &ctlClient{
		base:   strings.TrimRight(u.String(), "/"),
		token:  token,
		http:   &http.Client{Transport: tr, Timeout: timeout},
		stream: &http.Client{Transport: tr},
	}, nil
}

// request sends one request to path (under /api/v1, its segments already
// escaped), with body as JSON when it is not nil, and returns the answer for
// the caller to read and close, or the API's error.
func (c *ctlClient) request(ctx context.Context, hc *http.Client, method, path string, query url.Values, body []byte) (*http.Response, error) {
	target := c.base + "/api/v1" + path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e struct {
		Error string `json:"error"`
	}
	msg := fmt.Sprintf("%s %s: %s", method, req.URL.Path, resp.Status)
	if json.Unmarshal(answer, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	return nil, &ctlAPIError{status: resp.StatusCode, msg: clean(msg)}
}

// call sends one request, with a JSON body when body is not nil, and
// returns the body of its answer.
func (c *ctlClient) call(ctx context.Context, method, path string, query url.Values, body []byte) ([]byte, error) {
	resp, err := c.request(ctx, c.http, method, path, query, body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, ctlMaxBody))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	return answer, nil
}

// show calls the API and prints the answer: as JSON with --json, else by
// decoding it into v and calling human.
func (c *ctlClient) show(ctx context.Context, method, path string, query url.Values, v any, human func() error) error {
	return c.send(ctx, method, path, query, nil, v, human)
}

// send is show with a request body, sent as JSON when it is not nil.
func (c *ctlClient) send(ctx context.Context, method, path string, query url.Values, in, v any, human func() error) error {
	var reqBody []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s %s: encode request: %w", method, path, err)
		}
		reqBody = b
	}
	body, err := c.call(ctx, method, path, query, reqBody)
	if err != nil {
		return err
	}
	if c.json {
		var buf bytes.Buffer
		if err := json.Indent(&buf, bytes.TrimSpace(body), "", "  "); err != nil {
			return fmt.Errorf("%s %s: the answer is not JSON: %w", method, path, err)
		}
		buf.WriteByte('\n')
		_, err := c.stdout.Write(buf.Bytes())
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	return human()
}

// query maps the command's parameters onto the API's query parameters.
func query(p map[string]string, keys ...string) url.Values {
	q := url.Values{}
	for _, k := range keys {
		if v := p[k]; v != "" {
			q.Set(strings.ReplaceAll(k, "-", "_"), v)
		}
	}
	return q
}

// table prints rows under a header, in columns.
func (c *ctlClient) table(header string, rows func(w io.Writer)) error {
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	rows(tw)
	return tw.Flush()
}

// pageNote tells how to see the rest of a list that does not fit one page.
func (c *ctlClient) pageNote(total, offset, n int) {
	if n == 0 && total > 0 {
		fmt.Fprintf(c.stdout, "(offset=%d is past the %d items)\n", offset, total)
		return
	}
	if offset > 0 || offset+n < total {
		fmt.Fprintf(c.stdout, "(%d-%d of %d", offset+1, offset+n, total)
		if offset+n < total {
			fmt.Fprintf(c.stdout, "; next: offset=%d", offset+n)
		}
		fmt.Fprintln(c.stdout, ")")
	}
}

// ---------------------------------------------------------------------------
// Commands

func ctlStatus(ctx context.Context, c *ctlClient, _ map[string]string) error {
	var st admin.Status
	return c.show(ctx, "GET", "/status", nil, &st, func() error {
		tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
		row := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{k}, a...)...) }
		row("node", "%s", clean(st.Node))
		row("version", "%s", clean(st.Version))
		row("health", "%s", clean(st.Health))
		row("uptime", "%s", time.Duration(st.UptimeSeconds)*time.Second)
		row("connections", "%d open, %d clients, %d since start, %d refused",
			st.Connections.Current, st.Connections.Clients, st.Connections.Total, st.Connections.Refused)
		row("sessions", "%d online, %d offline", st.Sessions.Online, st.Sessions.Offline)
		row("subscriptions", "%d", st.Subscriptions)
		row("retained", "%d messages, %s", st.Retained.Messages, sizeIEC(st.Retained.Bytes))
		row("messages", "%d received, %d sent, %s, %d expired",
			st.Messages.Received, st.Messages.Sent, droppedText(st.Messages.Dropped), st.Messages.Expired)
		row("bytes", "%s received, %s sent", sizeIEC(st.Bytes.Received), sizeIEC(st.Bytes.Sent))
		row("queues", "%d queued, %d inflight, %s outbound", st.Queued, st.Inflight, sizeIEC(st.OutboundBytes))
		row("protocol errors", "%d", st.ProtocolErrors)
		row("bridges", "%d running, %d connected", st.Bridges.Count, st.Bridges.Connected)
		if cl := st.Cluster; cl != nil {
			split := "no netsplit"
			if cl.Netsplit {
				split = "netsplit"
			}
			row("cluster", "%d members, %d alive, %s, %d of %d links up", cl.Members, cl.Alive, split, cl.LinksUp, cl.Links)
		}
		if s := st.Store; s != nil {
			row("store", "%s, %s, %d batches (last %.3f ms), %d failures, %d pending",
				clean(s.Path), sizeIEC(s.Size), s.Batches, s.LastBatchMS, s.Failures, s.Pending)
		} else {
			row("store", "none: sessions live in memory")
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintln(c.stdout)
		return c.listenerTable(st.Listeners)
	})
}

// droppedText sums the dropped messages and names the reasons that count.
func droppedText(by map[string]int64) string {
	var total int64
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(by)) {
		total += by[k]
		if by[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", clean(k), by[k]))
		}
	}
	if len(parts) == 0 {
		return fmt.Sprintf("%d dropped", total)
	}
	return fmt.Sprintf("%d dropped (%s)", total, strings.Join(parts, ", "))
}

func ctlSessionList(ctx context.Context, c *ctlClient, p map[string]string) error {
	var pg admin.Page[broker.SessionInfo]
	q := query(p, "client-id", "username", "online", "limit", "offset")
	return c.show(ctx, "GET", "/sessions", q, &pg, func() error {
		err := c.table("CLIENT ID\tONLINE\tUSERNAME\tPROTOCOL\tREMOTE ADDRESS\tQUEUED\tINFLIGHT\tSUBSCRIPTIONS\tEXPIRY", func(w io.Writer) {
			for _, s := range pg.Items {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\n", clean(s.ClientID), yesNo(s.Online),
					dash(s.Username), dash(s.Version), dash(s.RemoteAddr), s.Queued, s.Inflight, s.Subscriptions,
					expiryText(s.Expiry))
			}
		})
		c.pageNote(pg.Total, pg.Offset, len(pg.Items))
		return err
	})
}

func ctlSessionShow(ctx context.Context, c *ctlClient, p map[string]string) error {
	var d admin.SessionDetail
	return c.show(ctx, "GET", "/sessions/"+url.PathEscape(p["client-id"]), nil, &d, func() error {
		tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
		row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
		row("client id", clean(d.ClientID))
		row("online", yesNo(d.Online))
		if d.Online {
			row("username", dash(d.Username))
			row("listener", dash(d.Listener))
			row("remote address", dash(d.RemoteAddr))
			row("protocol", dash(d.Version))
			row("connected at", d.ConnectedAt.Local().Format(time.RFC3339))
			row("keep alive", (time.Duration(d.KeepAlive) * time.Second).String())
		}
		row("session expiry", expiryText(d.Expiry))
		row("persistent", yesNo(d.Persistent))
		row("queued", strconv.Itoa(d.Queued))
		row("inflight", strconv.Itoa(d.Inflight))
		row("subscriptions", strconv.Itoa(len(d.Subscriptions)))
		if err := tw.Flush(); err != nil {
			return err
		}
		if len(d.Subscriptions) == 0 {
			return nil
		}
		fmt.Fprintln(c.stdout)
		return c.table("FILTER\tQOS\tNO LOCAL\tRETAIN AS PUBLISHED\tRETAIN HANDLING\tSUBSCRIPTION ID", func(w io.Writer) {
			for _, s := range d.Subscriptions {
				fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%d\t%s\n", clean(s.Filter), s.QoS, yesNo(s.NoLocal),
					yesNo(s.RetainAsPublished), s.RetainHandling, subID(s.SubscriptionID))
			}
		})
	})
}

func ctlSessionDisconnect(ctx context.Context, c *ctlClient, p map[string]string) error {
	var a admin.SessionAction
	id := p["client-id"]
	return c.show(ctx, "POST", "/sessions/"+url.PathEscape(id)+"/disconnect", nil, &a, func() error {
		_, err := fmt.Fprintf(c.stdout, "disconnected client %s\n", clean(id))
		return err
	})
}

func ctlSessionDelete(ctx context.Context, c *ctlClient, p map[string]string) error {
	var a admin.SessionAction
	id := p["client-id"]
	return c.show(ctx, "DELETE", "/sessions/"+url.PathEscape(id), nil, &a, func() error {
		_, err := fmt.Fprintf(c.stdout, "deleted the session of client %s\n", clean(id))
		return err
	})
}

func ctlSubscriptionList(ctx context.Context, c *ctlClient, p map[string]string) error {
	var pg admin.Page[admin.SubscriptionInfo]
	q := query(p, "client-id", "filter", "topic", "limit", "offset")
	return c.show(ctx, "GET", "/subscriptions", q, &pg, func() error {
		err := c.table("CLIENT ID\tFILTER\tQOS\tNO LOCAL\tRETAIN AS PUBLISHED\tRETAIN HANDLING\tSUBSCRIPTION ID", func(w io.Writer) {
			for _, s := range pg.Items {
				fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%d\t%s\n", clean(s.ClientID), clean(s.Filter), s.QoS,
					yesNo(s.NoLocal), yesNo(s.RetainAsPublished), s.RetainHandling, subID(s.SubscriptionID))
			}
		})
		c.pageNote(pg.Total, pg.Offset, len(pg.Items))
		return err
	})
}

// retainedPreview is how many characters of a payload a retained list shows.
const retainedPreview = 40

func ctlRetainedList(ctx context.Context, c *ctlClient, p map[string]string) error {
	var pg admin.Page[admin.RetainedMessage]
	return c.show(ctx, "GET", "/retained", query(p, "filter", "limit", "offset"), &pg, func() error {
		err := c.table("TOPIC\tQOS\tSIZE\tEXPIRY\tPAYLOAD", func(w io.Writer) {
			for _, m := range pg.Items {
				exp := "-"
				if !m.Expiry.IsZero() {
					exp = m.Expiry.Local().Format(time.RFC3339)
				}
				fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\n", clean(m.Topic), m.QoS, sizeIEC(int64(m.PayloadSize)), exp,
					payloadText(m.Payload, m.PayloadBase64, m.Truncated, retainedPreview))
			}
		})
		c.pageNote(pg.Total, pg.Offset, len(pg.Items))
		return err
	})
}

func ctlRetainedDelete(ctx context.Context, c *ctlClient, p map[string]string) error {
	var a admin.RetainedAction
	q := url.Values{"topic": {p["topic"]}}
	return c.show(ctx, "DELETE", "/retained", q, &a, func() error {
		_, err := fmt.Fprintf(c.stdout, "deleted the retained message of %s\n", clean(p["topic"]))
		return err
	})
}

func ctlListenerList(ctx context.Context, c *ctlClient, _ map[string]string) error {
	var ls []admin.ListenerInfo
	return c.show(ctx, "GET", "/listeners", nil, &ls, func() error { return c.listenerTable(ls) })
}

func (c *ctlClient) listenerTable(ls []admin.ListenerInfo) error {
	return c.table("LISTENER\tKIND\tADDRESS\tRUNNING\tCONNECTIONS\tACCEPTED\tREJECTED", func(w io.Writer) {
		for _, l := range ls {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%d\t%d\n", clean(l.Name), clean(l.Kind), clean(l.Address),
				yesNo(l.Running), l.Connections, l.Accepted, l.Rejected)
		}
	})
}

func ctlListenerStop(ctx context.Context, c *ctlClient, p map[string]string) error {
	return c.listenerAction(ctx, p["name"], "stop", "stopped")
}

func ctlListenerStart(ctx context.Context, c *ctlClient, p map[string]string) error {
	return c.listenerAction(ctx, p["name"], "start", "started")
}

func (c *ctlClient) listenerAction(ctx context.Context, name, verb, done string) error {
	var a admin.ListenerAction
	return c.show(ctx, "POST", "/listeners/"+url.PathEscape(name)+"/"+verb, nil, &a, func() error {
		_, err := fmt.Fprintf(c.stdout, "%s listener %s\n", done, clean(a.Name))
		return err
	})
}

// ctlConfigShow prints the configuration as TOML, in the tables and keys of
// the config file; the server has masked its secrets.
func ctlBridgeList(ctx context.Context, c *ctlClient, p map[string]string) error {
	var pg admin.Page[bridge.Status]
	return c.show(ctx, "GET", "/bridges", query(p, "limit", "offset"), &pg, func() error {
		err := c.table("BRIDGE\tCONNECTED\tADDRESS\tQUEUED\tIN\tOUT\tDROPPED\tRECONNECTS", func(w io.Writer) {
			for _, b := range pg.Items {
				fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\n", clean(b.Name), yesNo(b.Connected), dash(b.Address),
					b.Queued, b.ForwardedIn, b.ForwardedOut, b.Dropped, b.Reconnects)
			}
		})
		c.pageNote(pg.Total, pg.Offset, len(pg.Items))
		return err
	})
}

func ctlConfigShow(ctx context.Context, c *ctlClient, _ map[string]string) error {
	var raw json.RawMessage
	return c.show(ctx, "GET", "/config", nil, &raw, func() error {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var cfg map[string]any
		if err := dec.Decode(&cfg); err != nil {
			return fmt.Errorf("GET /config: read answer: %w", err)
		}
		fmt.Fprintf(c.stdout, "# Avocet configuration in effect at %s. Secrets that are set are masked.\n\n", c.base)
		enc := toml.NewEncoder(c.stdout)
		enc.Indent = ""
		return enc.Encode(tomlNumbers(cfg))
	})
}

// tomlNumbers turns the JSON numbers in v into integers where they are
// whole, so that TOML prints 100 rather than 100.0.
func tomlNumbers(v any) any {
	switch t := v.(type) {
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return i
		}
		f, _ := t.Float64()
		return f
	case map[string]any:
		for k, e := range t {
			t[k] = tomlNumbers(e)
		}
	case []any:
		for i, e := range t {
			t[i] = tomlNumbers(e)
		}
	}
	return v
}

func ctlDrain(ctx context.Context, c *ctlClient, _ map[string]string) error {
	var a admin.DrainAction
	return c.show(ctx, "POST", "/drain", nil, &a, func() error {
		_, err := fmt.Fprintln(c.stdout, "draining: the listeners stop and every client is disconnected once its"+
			" inflight messages are done; `avocet ctl status` shows health draining")
		return err
	})
}

// ctlTrace follows the trace stream of one client until the user interrupts
// it (0), the server ends it (0) or the connection fails (1). With --json it
// copies the stream's lines as they come.
func ctlTrace(ctx context.Context, c *ctlClient, p map[string]string) error {
	id := p["client-id"]
	resp, err := c.request(ctx, c.stream, "GET", "/trace", url.Values{"client_id": {id}}, nil)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer resp.Body.Close()
	fmt.Fprintf(c.stderr, "tracing client %s; Ctrl-C to stop\n", clean(id))
	r := bufio.NewReader(resp.Body)
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 && line[len(line)-1] == '\n' {
			if werr := c.traceLine(line); werr != nil {
				return werr
			}
		}
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, io.EOF):
			fmt.Fprintln(c.stderr, "the server ended the trace")
			return nil
		default:
			return fmt.Errorf("trace: %w", err)
		}
	}
}

// traceLine prints one line of the stream.
func (c *ctlClient) traceLine(line []byte) error {
	if c.json {
		_, err := c.stdout.Write(line)
		return err
	}
	var ev admin.TraceEvent
	if err := json.Unmarshal(line, &ev); err != nil {
		_, err := fmt.Fprintf(c.stdout, "? %s\n", clean(string(bytes.TrimSpace(line))))
		return err
	}
	_, err := fmt.Fprintln(c.stdout, traceText(ev))
	return err
}

// ctlClusterShow prints the node's view of the cluster: a summary, the
// members, and the links to the other nodes.
func ctlClusterShow(ctx context.Context, c *ctlClient, _ map[string]string) error {
	var st admin.ClusterStatus
	return c.show(ctx, "GET", "/cluster", nil, &st, func() error {
		tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
		row := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{k}, a...)...) }
		row("node", "%s", clean(st.Node))
		row("netsplit", "%s", yesNo(st.Netsplit))
		row("filters", "%d", st.Filters)
		row("messages", "%d forwarded, %d not forwarded, %d received", st.Forwarded, st.ForwardDrops, st.Received)
		row("retained", "%d changes applied", st.RetainApplied)
		row("sessions", "%d moved here", st.SessionsMoved)
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintln(c.stdout)
		err := c.table("MEMBER\tSTATE\tGOSSIP ADDRESS\tLINK ADDRESS", func(w io.Writer) {
			for _, m := range st.Members {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", clean(m.Name), clean(m.State), dash(m.GossipAddr), dash(m.LinkAddr))
			}
		})
		if err != nil {
			return err
		}
		fmt.Fprintln(c.stdout)
		return c.table("PEER\tUP\tQUEUED\tUNACKED\tSENT\tACKED\tDROPPED", func(w io.Writer) {
			for _, l := range st.Links {
				fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%d\t%d\t%d\n", clean(l.Node), yesNo(l.Connected),
					l.Queued, l.Unacked, l.Sent, l.Acked, l.Dropped)
			}
		})
	})
}

// ctlClusterJoin asks the node to contact the seeds, given as words or as
// seeds=A,B.
func ctlClusterJoin(ctx context.Context, c *ctlClient, p map[string]string) error {
	var seeds []string
	for s := range strings.SplitSeq(p["seeds"], ",") {
		if s = strings.TrimSpace(s); s != "" {
			seeds = append(seeds, s)
		}
	}
	if len(seeds) == 0 {
		return usageErrorf("cluster join needs at least one HOST:PORT")
	}
	var a admin.ClusterAction
	return c.send(ctx, "POST", "/cluster/join", nil, admin.ClusterJoinRequest{Seeds: seeds}, &a, func() error {
		_, err := fmt.Fprintf(c.stdout, "joined the cluster through %s; `avocet ctl cluster show` lists the members\n",
			clean(strings.Join(seeds, ", ")))
		return err
	})
}

// ctlClusterLeave asks the node to leave the cluster.
func ctlClusterLeave(ctx context.Context, c *ctlClient, _ map[string]string) error {
	var a admin.ClusterAction
	return c.show(ctx, "POST", "/cluster/leave", nil, &a, func() error {
		_, err := fmt.Fprintln(c.stdout, "leaving the cluster: the node hands its offline sessions over to the other"+
			" members and shuts down")
		return err
	})
}

// tracePreview is how many characters of a payload a trace line shows.
const tracePreview = 64

// traceText is the human form of a trace event: the local time, the client,
// an arrow (-> from the client to the broker, <- from the broker to the
// client), the packet type and the fields the packet has.
func traceText(ev admin.TraceEvent) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", ev.Time.Local().Format("15:04:05.000"), clean(ev.ClientID))
	if ev.Type == "" {
		fmt.Fprintf(&b, " !! %d packets not shown: the trace fell behind", ev.Dropped)
		return b.String()
	}
	arrow := "->"
	if ev.Direction == "out" {
		arrow = "<-"
	}
	fmt.Fprintf(&b, " %s %s", arrow, clean(ev.Type))
	add := func(format string, a ...any) {
		b.WriteByte(' ')
		fmt.Fprintf(&b, format, a...)
	}
	connect := ev.Type == "CONNECT"
	if ev.Version != "" {
		add("protocol=%s", clean(ev.Version))
	}
	if ev.Username != "" {
		add("username=%s", clean(ev.Username))
	}
	if ev.CleanStart != nil {
		add("clean_start=%t", *ev.CleanStart)
	}
	if ev.KeepAlive != nil {
		add("keep_alive=%d", *ev.KeepAlive)
	}
	if ev.WillTopic != "" {
		add("will_topic=%s", clean(ev.WillTopic))
	}
	if ev.PacketID != 0 {
		add("id=%d", ev.PacketID)
	}
	if ev.Topic != "" {
		add("topic=%s", clean(ev.Topic))
	}
	if ev.TopicAlias != 0 {
		add("alias=%d", ev.TopicAlias)
	}
	if ev.QoS != nil {
		if connect {
			add("will_qos=%d", *ev.QoS)
		} else {
			add("qos=%d", *ev.QoS)
		}
	}
	if ev.Retain {
		if connect {
			add("will_retain")
		} else {
			add("retain")
		}
	}
	if ev.Dup {
		add("dup")
	}
	if ev.SessionPresent {
		add("session_present")
	}
	if ev.ReasonCode != nil {
		add("reason=0x%02X (%s)", *ev.ReasonCode, clean(ev.Reason))
	}
	if len(ev.ReasonCodes) > 0 {
		codes := make([]string, len(ev.ReasonCodes))
		for i, rc := range ev.ReasonCodes {
			codes[i] = fmt.Sprintf("0x%02X", rc)
		}
		add("reasons=%s", strings.Join(codes, ","))
	}
	if len(ev.Filters) > 0 {
		fs := make([]string, len(ev.Filters))
		for i, f := range ev.Filters {
			fs[i] = clean(f.Filter)
			if f.QoS != nil {
				fs[i] += fmt.Sprintf("(qos %d)", *f.QoS)
			}
		}
		add("filters=%s", strings.Join(fs, ","))
	}
	if ev.PayloadSize != nil {
		add("size=%d", *ev.PayloadSize)
		if ev.PayloadBase64 != "" {
			add("payload_base64=%s", strings.TrimPrefix(payloadText("", ev.PayloadBase64, ev.Truncated, tracePreview), "base64 "))
		} else {
			add("payload=%s", payloadText(ev.Payload, "", ev.Truncated, tracePreview))
		}
	}
	return b.String()
}

// ---------------------------------------------------------------------------
// Formatting

// clean makes text from the broker safe to print in a terminal and a table:
// when s holds a control or other unprintable character, it is shown with
// Go escapes ("\t", "\x1b") in place of those characters.
func clean(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) < 0 {
		return s
	}
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}

// dash is clean(s), or "-" for an empty s.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return clean(s)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// expiryText shows a session expiry interval in seconds.
func expiryText(sec uint32) string {
	if sec == 0xFFFFFFFF {
		return "never"
	}
	return (time.Duration(sec) * time.Second).String()
}

func subID(id uint32) string {
	if id == 0 {
		return "-"
	}
	return strconv.FormatUint(uint64(id), 10)
}

// payloadText shows a payload preview quoted, cut to max characters, with
// "..." when there is more; a binary payload shows as "base64 " and its
// preview in base64.
func payloadText(text, b64 string, truncated bool, max int) string {
	if b64 != "" {
		if len(b64) > max {
			b64, truncated = b64[:max], true
		}
		if truncated {
			b64 += "..."
		}
		return "base64 " + b64
	}
	if r := []rune(text); len(r) > max {
		text, truncated = string(r[:max]), true
	}
	if truncated {
		return strconv.Quote(text) + "..."
	}
	return strconv.Quote(text)
}

// sizeIEC shows a byte count in B, KiB, MiB or GiB.
func sizeIEC(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, suffix := float64(n)/unit, "KiB"
	for _, s := range []string{"MiB", "GiB", "TiB"} {
		if v < unit {
			break
		}
		v, suffix = v/unit, s
	}
	return fmt.Sprintf("%.1f %s", v, suffix)
}
