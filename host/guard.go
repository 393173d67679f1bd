package host

import (
	"crypto/subtle"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// checkHost refuses requests whose Host header names another server: a
// page that rebinds its own DNS name to this machine's address (DNS
// rebinding) reaches the port with its own name in Host, and gets 403.
func (s *Server) checkHost(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.hostAllowed(r.Host) {
			http.Error(w, "forbidden: the Host header does not name this server (see [server] allowed_hosts)", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// hostAllowed accepts, in a Host header: an IP address (a rebinding page
// cannot make its browser send one), localhost and its subdomains, the
// listen address, and the names in allowed_hosts (a name that starts with
// a dot accepts its subdomains).
func (s *Server) hostAllowed(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	switch {
	case host == "":
		return false
	case net.ParseIP(host) != nil:
		return true
	case host == "localhost" || strings.HasSuffix(host, ".localhost"):
		return true
	case strings.EqualFold(host, strings.Trim(s.opt.ListenHost, "[]")):
		return true
	}
	for _, a := range s.opt.AllowedHosts {
		a = strings.ToLower(a)
		if host == a || (strings.HasPrefix(a, ".") && strings.HasSuffix(host, a)) {
			return true
		}
	}
	return false
}

// checkOrigin lets through clients that send no Origin (not browsers),
// same-origin pages, and the configured allow-list; never everyone.
func (s *Server) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	if slices.Contains(s.opt.AllowedOrigins, origin) {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}

// authorized checks the bearer token (the scheme is case-insensitive, RFC
// 7235), or the token query parameter that browsers, which cannot set
// headers on a WebSocket, must use. The comparison takes constant time.
func (s *Server) authorized(r *http.Request) bool {
	if s.opt.AuthToken == "" {
		return true
	}
	got, ok := bearer(r.Header.Get("Authorization"))
	if !ok {
		got = r.URL.Query().Get("token")
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(s.opt.AuthToken)) == 1
}

func bearer(h string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimSpace(token), true
}
