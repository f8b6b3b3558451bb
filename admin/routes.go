package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
)

// route is one endpoint of the server: its method and ServeMux path pattern,
// which docs/admin-api.md lists as a heading "### METHOD pattern".
type route struct {
	method  string
	pattern string
	public  bool // served without authentication
	handler http.HandlerFunc
}

// routeTable lists every endpoint the server registers.
func (s *Server) routeTable() []route {
	return []route{
		{method: "GET", pattern: "/healthz", public: true, handler: s.healthz},
		{method: "GET", pattern: "/metrics", handler: s.metrics().ServeHTTP},
		{method: "GET", pattern: "/", handler: s.page},
		{method: "GET", pattern: "/assets/{file}", handler: s.asset},

		{method: "GET", pattern: "/api/v1/status", handler: s.status},
		{method: "GET", pattern: "/api/v1/listeners", handler: s.listListeners},
		{method: "POST", pattern: "/api/v1/listeners/{name}/stop", handler: s.stopListener},
		{method: "POST", pattern: "/api/v1/listeners/{name}/start", handler: s.startListener},
		{method: "GET", pattern: "/api/v1/bridges", handler: s.listBridges},
		{method: "GET", pattern: "/api/v1/sessions", handler: s.listSessions},
		{method: "GET", pattern: "/api/v1/sessions/{client_id}", handler: s.showSession},
		{method: "POST", pattern: "/api/v1/sessions/{client_id}/disconnect", handler: s.disconnectSession},
		{method: "DELETE", pattern: "/api/v1/sessions/{client_id}", handler: s.deleteSession},
		{method: "GET", pattern: "/api/v1/subscriptions", handler: s.listSubscriptions},
		{method: "GET", pattern: "/api/v1/retained", handler: s.listRetained},
		{method: "DELETE", pattern: "/api/v1/retained", handler: s.deleteRetained},
		{method: "GET", pattern: "/api/v1/config", handler: s.showConfig},
		{method: "POST", pattern: "/api/v1/drain", handler: s.drain},
		{method: "GET", pattern: "/api/v1/trace", handler: s.trace},
		{method: "GET", pattern: "/api/v1/cluster", handler: s.showCluster},
		{method: "POST", pattern: "/api/v1/cluster/join", handler: s.joinCluster},
		{method: "POST", pattern: "/api/v1/cluster/leave", handler: s.leaveCluster},
	}
}

// routes builds the server's handler from routeTable: every route behind the
// authentication check unless public, and JSON 404 and 405 answers for what
// no route matches.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range s.routeTable() {
		h := http.Handler(rt.handler)
		if !rt.public {
			h = s.authenticate(h)
		}
		p := rt.pattern
		if p == "/" {
			p = "/{$}" // the page only, not every path
		}
		mux.Handle(rt.method+" "+p, h)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r) // Handler sets no path values; ServeHTTP below does
		if pattern == "" {
			// No route: answer in JSON, after authentication so that
			// the set of paths is not disclosed to strangers.
			s.authenticate(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				rec := &statusRecorder{ResponseWriter: w}
				h.ServeHTTP(rec, r) // learns 404 or 405 and its Allow header
				code := rec.code
				if code != http.StatusMethodNotAllowed {
					code = http.StatusNotFound
				}
				writeError(w, code, "no such endpoint: "+r.Method+" "+r.URL.Path)
			})).ServeHTTP(w, r)
			return
		}
		w.Header().Set("X-Content-Type-Options", "nosniff")
		mux.ServeHTTP(w, r)
	})
}

// statusRecorder keeps the status code and headers of ServeMux's own 404 and
// 405 answers and discards their text bodies.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) { r.code = code }

func (r *statusRecorder) Write(p []byte) (int, error) { return len(p), nil }

// authenticate passes requests that carry the token, and every request when
// the server has none. Others get 401 with a Basic challenge, so that a
// browser asks for it.
func (s *Server) authenticate(next http.Handler) http.Handler {
	if s.open {
		return next
	}
	want := sha256.Sum256([]byte(s.opts.Token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := credential(r)
		if ok {
			sum := sha256.Sum256([]byte(got))
			ok = subtle.ConstantTimeCompare(sum[:], want[:]) == 1
		}
		if !ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="avocet admin", charset="UTF-8"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong token: send Authorization: Bearer <token>")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// credential returns the token of a request: a bearer token, or the password
// of basic auth.
func credential(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if scheme, tok, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
		tok = strings.TrimSpace(tok)
		return tok, tok != ""
	}
	if _, pass, ok := r.BasicAuth(); ok {
		return pass, pass != ""
	}
	return "", false
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte("ok\n"))
}

// writeJSON answers with v as indented JSON.
func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		writeError(w, http.StatusInternalServerError, "encode response: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

// apiError is the body of every error answer.
type apiError struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	b, _ := json.Marshal(apiError{Error: msg})
	_, _ = w.Write(append(b, '\n'))
}

// Pagination limits.
const (
	defaultLimit = 100
	maxLimit     = 1000
)

// Page is the body of a paginated list.
type Page[T any] struct {
	Total  int `json:"total"`  // items matching the filters, on every page
	Offset int `json:"offset"` // of the first item returned
	Limit  int `json:"limit"`  // the most items returned
	Items  []T `json:"items"`  // never null
}

// pagination reads the limit and offset parameters: limit 1 or more (100
// when absent; above 1000 it is taken as 1000), offset 0 or more.
func pagination(r *http.Request) (limit, offset int, err error) {
	q := r.URL.Query()
	limit, offset = defaultLimit, 0
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 {
			return 0, 0, errors.New("limit must be a whole number from 1 to 1000")
		}
		limit = min(limit, maxLimit)
	}
	if v := q.Get("offset"); v != "" {
		if offset, err = strconv.Atoi(v); err != nil || offset < 0 {
			return 0, 0, errors.New("offset must be a whole number, 0 or more")
		}
	}
	return limit, offset, nil
}

// paginate returns the page of all that limit and offset select.
func paginate[T any](all []T, limit, offset int) Page[T] {
	p := Page[T]{Total: len(all), Offset: offset, Limit: limit, Items: []T{}}
	if offset < len(all) {
		p.Items = all[offset:min(len(all), offset+limit)]
	}
	return p
}

// globMatch reports whether s matches pattern, in which '*' stands for any
// run of characters, '?' for any one character, and everything else for
// itself ('/' included, unlike path.Match).
func globMatch(pattern, s string) bool {
	p, t := []rune(pattern), []rune(s)
	pi, ti := 0, 0
	star, mark := -1, 0 // the last '*' seen and the text position it took up to
	for ti < len(t) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == t[ti]):
			pi++
			ti++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, ti
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			ti = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}
