package admin

import (
	"io/fs"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// pageIDs are the elements a browser test reads figures from.
var pageIDs = []string{
	"node", "version", "uptime", "health",
	"connections", "clients", "connections-total", "connections-refused",
	"sessions-online", "sessions-offline", "subscriptions",
	"rate-in", "rate-out", "messages-received", "messages-sent", "dropped",
	"queued", "inflight", "outbound-bytes", "retained-messages", "retained-bytes",
	"store", "store-size", "msg-rate", "listeners", "listeners-body", "updated", "error",
	"cluster-panel", "cluster-members", "cluster-alive", "cluster-netsplit",
	"cluster-members-body", "cluster-links-body",
}

func TestStatusPageServed(t *testing.T) {
	e := newEnv(t, envOptions{})
	res, err := http.Get(e.base + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("GET /: Content-Security-Policy %q", csp)
	}
	code, html := e.do(t, "GET", "/")
	if code != http.StatusOK {
		t.Fatal(code)
	}
	for _, id := range pageIDs {
		if !strings.Contains(string(html), `id="`+id+`"`) {
			t.Errorf("the page has no element with id %q", id)
		}
	}
	for path, ctype := range map[string]string{"/assets/status.js": "text/javascript", "/assets/style.css": "text/css"} {
		res, err := http.Get(e.base + path)
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
		if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), ctype) {
			t.Errorf("GET %s: %d %s, want 200 %s", path, res.StatusCode, res.Header.Get("Content-Type"), ctype)
		}
	}
	e.wantError(t, "GET", "/assets/index.html", http.StatusNotFound, "no such asset")
	e.wantError(t, "GET", "/assets/nope.js", http.StatusNotFound, "no such asset")
	e.wantError(t, "GET", "/index.html", http.StatusNotFound, "no such endpoint")
}

// TestStatusPageIsSelfContained checks that the page loads nothing from
// elsewhere and that its script writes only to elements the page has.
func TestStatusPageIsSelfContained(t *testing.T) {
	files := map[string]string{}
	err := fs.WalkDir(pageFiles, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(pageFiles, path)
		files[path] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	external := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	for name, text := range files {
		for _, m := range external.FindAllString(text, -1) {
			if m != "http://www.w3.org" { // the SVG namespace, a name rather than a fetch
				t.Errorf("%s refers to %s: the page must load nothing from elsewhere", name, m)
			}
		}
	}
	html, js := files["index.html"], files["status.js"]
	used := regexp.MustCompile(`(?:\$|set)\("([a-z-]+)"`).FindAllStringSubmatch(js, -1)
	if len(used) < 10 {
		t.Fatalf("status.js uses %d element ids; the pattern no longer finds them", len(used))
	}
	for _, m := range used {
		if !strings.Contains(html, `id="`+m[1]+`"`) {
			t.Errorf("status.js writes to #%s, which index.html lacks", m[1])
		}
	}
	if !strings.Contains(js, `fetch("api/v1/status"`) || !strings.Contains(js, "POLL_MS = 1000") {
		t.Error("status.js does not poll api/v1/status every second")
	}
}
