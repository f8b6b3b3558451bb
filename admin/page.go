package admin

import (
	"embed"
	"io/fs"
	"net/http"
)

// static holds the status page: an HTML file, its script and its style
// sheet, served as they are, with no build step and nothing from elsewhere.
//
//go:embed static
var static embed.FS

// pageFiles is static without its directory name.
var pageFiles, _ = fs.Sub(static, "static")

// pagePolicy keeps the page to its own files and its own API.
const pagePolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// page serves the status page.
func (s *Server) page(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Security-Policy", pagePolicy)
	w.Header().Set("Cache-Control", "no-cache")
	http.ServeFileFS(w, r, pageFiles, "index.html")
}

// asset serves the page's script and style sheet.
func (s *Server) asset(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	if name == "index.html" {
		writeError(w, http.StatusNotFound, "no such asset: "+name)
		return
	}
	if _, err := fs.Stat(pageFiles, name); err != nil {
		writeError(w, http.StatusNotFound, "no such asset: "+name)
		return
	}
	w.Header().Set("Content-Security-Policy", pagePolicy)
	w.Header().Set("Cache-Control", "no-cache")
	http.ServeFileFS(w, r, pageFiles, name)
}
