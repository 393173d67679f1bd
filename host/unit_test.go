package host

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestCheckOrigin(t *testing.T) {
	s := &Server{opt: Options{AllowedOrigins: []string{"https://lab.example", "http://localhost:3000"}}}
	for _, c := range []struct {
		host, origin string
		want         bool
	}{
		{"127.0.0.1:8765", "", true}, // not a browser
		{"127.0.0.1:8765", "http://127.0.0.1:8765", true},
		{"127.0.0.1:8765", "https://127.0.0.1:8765", true}, // scheme is not compared
		{"Lab.Example:80", "http://lab.example:80", true},  // host compared case-insensitively
		{"127.0.0.1:8765", "https://lab.example", true},
		{"127.0.0.1:8765", "http://localhost:3000", true},
		{"127.0.0.1:8765", "http://localhost:3001", false},
		{"127.0.0.1:8765", "https://lab.example.evil", false},
		{"127.0.0.1:8765", "https://LAB.example", false}, // the allow-list is exact
		{"127.0.0.1:8765", "http://127.0.0.1:9999", false},
		{"127.0.0.1:8765", "http://127.0.0.1", false},
		{"127.0.0.1:8765", "null", false},
		{"127.0.0.1:8765", "http://%zz", false},
		{"127.0.0.1:8765", "*", false},
	} {
		r := httptest.NewRequest(http.MethodGet, "/ws", nil)
		r.Host = c.host
		if c.origin != "" {
			r.Header.Set("Origin", c.origin)
		}
		if got := s.checkOrigin(r); got != c.want {
			t.Errorf("checkOrigin(Host %s, Origin %q) = %v, want %v", c.host, c.origin, got, c.want)
		}
	}

	none := &Server{}
	r := httptest.NewRequest(http.MethodGet, "/ws", nil)
	r.Header.Set("Origin", "https://anything.example")
	if none.checkOrigin(r) {
		t.Error("a foreign origin passed with no allow-list")
	}
}

func TestAuthorized(t *testing.T) {
	open := &Server{}
	if !open.authorized(httptest.NewRequest(http.MethodGet, "/ws", nil)) {
		t.Error("no auth_token configured, yet a request was refused")
	}

	s := &Server{opt: Options{AuthToken: "s3cret"}}
	for _, c := range []struct {
		name, target, authorization string
		want                        bool
	}{
		{"nothing", "/ws", "", false},
		{"bearer", "/ws", "Bearer s3cret", true},
		{"wrong bearer", "/ws", "Bearer s3cre", false},
		{"longer bearer", "/ws", "Bearer s3cretx", false},
		{"empty bearer", "/ws", "Bearer ", false},
		{"no scheme", "/ws", "s3cret", false},
		{"basic", "/ws", "Basic s3cret", false},
		{"query", "/ws?token=s3cret", "", true},
		{"wrong query", "/ws?token=nope", "", false},
		{"empty query", "/ws?token=", "", false},
		{"query on another name", "/ws?auth=s3cret", "", false},
	} {
		r := httptest.NewRequest(http.MethodGet, c.target, nil)
		if c.authorization != "" {
			r.Header.Set("Authorization", c.authorization)
		}
		if got := s.authorized(r); got != c.want {
			t.Errorf("%s: authorized = %v, want %v", c.name, got, c.want)
		}
	}
}

func closedWithin(ch <-chan struct{}, d time.Duration) bool {
	select {
	case <-ch:
		return true
	default:
	}
	select {
	case <-ch:
		return true
	case <-time.After(d):
		return false
	}
}
