package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"
)

// Environment variables that hold the admin listener's tokens. Like the
// other secrets, they never come from the configuration file.

// minTokenBytes is the shortest token accepted: a shorter one is guessed.
const minTokenBytes = 16

// checkToken refuses a token too short to protect anything; "" (no token)
// is fine.
func checkToken(env, token string) error {
	if token != "" && len(token) < minTokenBytes {
		return fmt.Errorf("admin: %s is %d bytes; use at least %d (for example: openssl rand -hex 32)", env, len(token), minTokenBytes)
	}
	return nil
}

// requireToken wraps h so that it answers only requests that present one of
// tokens (empty ones are ignored); with no token at all, h is returned as
// is. A request presents a token as "Authorization: Bearer TOKEN" (scripts,
// Prometheus) or as the password of HTTP basic authentication, with any
// user name, which is what a browser sends after asking its user.
func requireToken(h http.Handler, tokens ...string) http.Handler {
	var want [][sha256.Size]byte
	for _, t := range tokens {
		if t != "" {
			want = append(want, sha256.Sum256([]byte(t)))
		}
	}
	if len(want) == 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if presented, ok := presentedToken(r); ok {
			got := sha256.Sum256([]byte(presented)) // equal lengths: the comparison takes the same time whatever the token
			for _, t := range want {
				if subtle.ConstantTimeCompare(got[:], t[:]) == 1 {
					h.ServeHTTP(w, r)
					return
				}
			}
		}
		w.Header().Add("WWW-Authenticate", `Basic realm="herd admin", charset="UTF-8"`)
		w.Header().Add("WWW-Authenticate", `Bearer realm="herd admin"`)
		http.Error(w, "herd admin: this needs the admin token: send \"Authorization: Bearer TOKEN\", "+
			"or give the token as the password when the browser asks", http.StatusUnauthorized)
	})
}

// presentedToken returns the token a request carries, if any.
func presentedToken(r *http.Request) (string, bool) {
	if scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		return strings.TrimSpace(token), true
	}
	if _, password, ok := r.BasicAuth(); ok {
		return password, true
	}
	return "", false
}

// authorize adds this server's admin token, if it has one, to a request
// for another server's admin listener: the herd shares one token.
func (s *Server) authorize(req *http.Request) {
	if s.opt.Token != "" {
		req.Header.Set("Authorization", "Bearer "+s.opt.Token)
	}
}
