package webhook

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// reviewer answers TokenReviews and SubjectAccessReviews: tokens maps a
// token to its user, allowed names the users allowed get on /metrics;
// fail makes every review an error, and hold, when set, makes token
// reviews wait for it to close. It counts the token reviews.
type reviewer struct {
	tokens  map[string]string
	allowed map[string]bool
	fail    atomic.Bool
	hold    chan struct{}
	calls   atomic.Int32
}

func (rv *reviewer) client() *fake.Clientset {
	c := fake.NewClientset()
	c.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		rv.calls.Add(1)
		if rv.hold != nil {
			<-rv.hold
		}
		if rv.fail.Load() {
			return true, nil, errors.New("connection refused")
		}
		tr := a.(k8stesting.CreateAction).GetObject().(*authnv1.TokenReview).DeepCopy()
		if u, ok := rv.tokens[tr.Spec.Token]; ok {
			tr.Status = authnv1.TokenReviewStatus{Authenticated: true, User: authnv1.UserInfo{Username: u, Groups: []string{"g"},
				Extra: map[string]authnv1.ExtraValue{"k": {"v"}}}}
		}
		return true, tr, nil
	})
	c.PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		sar := a.(k8stesting.CreateAction).GetObject().(*authzv1.SubjectAccessReview).DeepCopy()
		s := sar.Spec
		sar.Status.Allowed = rv.allowed[s.User] && s.NonResourceAttributes != nil && s.NonResourceAttributes.Path == "/metrics" &&
			s.NonResourceAttributes.Verb == "get" && len(s.Groups) == 1 && s.Extra["k"][0] == "v"
		return true, sar, nil
	})
	return c
}

// serve runs one request through the filter.
func serve(t *testing.T, a *metricsAuth, method, path, auth string) *httptest.ResponseRecorder {
	t.Helper()
	h, err := a.filter(logr.Discard(), http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("metrics")) }))
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(method, path, nil)
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestMetricsAuth(t *testing.T) {
	t.Parallel()
	rv := &reviewer{tokens: map[string]string{"good": "prometheus", "other": "someone"}, allowed: map[string]bool{"prometheus": true}}
	a := newMetricsAuth(rv.client(), logr.Discard())
	now := time.Unix(1000, 0)
	a.now = func() time.Time { return now }
	get := func(method, path, auth string) int { return serve(t, a, method, path, auth).Code }
	// No bearer token: refused without asking the API server.
	for _, auth := range []string{"", "Basic Z29vZA==", "Bearer ", "Bearer  good", "Bearer good x", "Bearergood"} {
		if got := get("GET", "/metrics", auth); got != http.StatusUnauthorized || rv.calls.Load() != 0 {
			t.Errorf("Authorization %q: %d after %d reviews, want 401 after none", auth, got, rv.calls.Load())
		}
	}
	for _, tc := range []struct {
		name, method, path, auth string
		want                     int
	}{
		{"a token the API server does not know", "GET", "/metrics", "Bearer bad", http.StatusUnauthorized},
		{"a user without the right", "GET", "/metrics", "Bearer other", http.StatusForbidden},
		{"another path", "GET", "/debug", "Bearer good", http.StatusForbidden},
		{"another verb", "POST", "/metrics", "Bearer good", http.StatusForbidden},
		{"a user with the right", "GET", "/metrics", "Bearer good", http.StatusOK},
		{"the scheme in lower case", "GET", "/metrics", "bearer good", http.StatusOK},
	} {
		if got := get(tc.method, tc.path, tc.auth); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
	if w := serve(t, a, "GET", "/metrics", ""); w.Header().Get("WWW-Authenticate") == "" {
		t.Error("a 401 without WWW-Authenticate")
	}

	// Two allowed callers are cached side by side.
	rv.tokens["good2"] = "prometheus"
	get("GET", "/metrics", "Bearer good2")
	before := rv.calls.Load()
	if get("GET", "/metrics", "Bearer good") != http.StatusOK || get("GET", "/metrics", "Bearer good2") != http.StatusOK || rv.calls.Load() != before {
		t.Errorf("two allowed callers: %d reviews, want none", rv.calls.Load()-before)
	}
	// Cached: an allowed caller for allowTTL, a refused one for denyTTL.
	calls := rv.calls.Load()
	if get("GET", "/metrics", "Bearer good") != http.StatusOK || get("GET", "/metrics", "Bearer other") != http.StatusForbidden || rv.calls.Load() != calls {
		t.Errorf("the cache was not used: %d reviews, %d before", rv.calls.Load(), calls)
	}
	now = now.Add(denyTTL)
	get("GET", "/metrics", "Bearer other")
	get("GET", "/metrics", "Bearer good")
	if rv.calls.Load() != calls+1 {
		t.Errorf("after denyTTL: %d reviews, want 1 (the refusal's)", rv.calls.Load()-calls)
	}
	// After allowTTL the API server is asked again; a failed review
	// answers 500 and is not cached.
	now = now.Add(allowTTL)
	rv.fail.Store(true)
	if got := get("GET", "/metrics", "Bearer good"); got != http.StatusInternalServerError {
		t.Errorf("a failed review: %d, want 500", got)
	}
	rv.fail.Store(false)
	calls = rv.calls.Load()
	if got := get("GET", "/metrics", "Bearer good"); got != http.StatusOK || rv.calls.Load() != calls+1 {
		t.Errorf("after a failed review: %d with %d reviews, want 200 with 1", got, rv.calls.Load()-calls)
	}
}

// TestMetricsAuthFlood: bad tokens fill only the refusals' cache (an
// allowed scraper stays cached), requests with one token share one
// review, and reviews beyond maxReviews are refused at once with 503.
func TestMetricsAuthFlood(t *testing.T) {
	t.Parallel()
	rv := &reviewer{tokens: map[string]string{"good": "prometheus"}, allowed: map[string]bool{"prometheus": true}}
	a := newMetricsAuth(rv.client(), logr.Discard())
	if got := serve(t, a, "GET", "/metrics", "Bearer good").Code; got != http.StatusOK {
		t.Fatalf("the scraper: %d", got)
	}
	for i := range maxDenied + 50 {
		if got := serve(t, a, "GET", "/metrics", fmt.Sprintf("Bearer junk%d", i)).Code; got != http.StatusUnauthorized {
			t.Fatalf("a bad token: %d", got)
		}
	}
	if n := len(a.denied); n == 0 || n > maxDenied {
		t.Errorf("%d cached refusals, want 1 to %d", n, maxDenied)
	}
	calls := rv.calls.Load()
	if got := serve(t, a, "GET", "/metrics", "Bearer good").Code; got != http.StatusOK || rv.calls.Load() != calls {
		t.Errorf("the scraper after the flood: %d, %d reviews; want 200 from the cache", got, rv.calls.Load()-calls)
	}

	rv.hold = make(chan struct{})
	b := newMetricsAuth(rv.client(), logr.Discard())
	calls = rv.calls.Load()
	// maxReviews distinct tokens, each asked twice at once, hold every
	// slot with maxReviews reviews ...
	var wg sync.WaitGroup
	codes := make(chan int, 2*maxReviews)
	for i := range 2 * maxReviews {
		wg.Go(func() { codes <- serve(t, b, "GET", "/metrics", fmt.Sprintf("Bearer held%d", i%maxReviews)).Code })
	}
	// (The fake clientset runs one reactor at a time, so count the slots
	// taken, not the reviews begun.)
	deadline := time.Now().Add(5 * time.Second)
	for len(b.slots) < maxReviews && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	// ... so one more caller is told to retry, without a review.
	if got := serve(t, b, "GET", "/metrics", "Bearer another").Code; got != http.StatusServiceUnavailable {
		t.Errorf("beyond %d reviews: %d, want 503", maxReviews, got)
	}
	close(rv.hold)
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != http.StatusUnauthorized {
			t.Errorf("a held request: %d, want 401", c)
		}
	}
	if got := rv.calls.Load() - calls; got != maxReviews {
		t.Errorf("%d token reviews for %d requests with %d tokens, want %d", got, 2*maxReviews, maxReviews, maxReviews)
	}
}

// TestServingCert: no certificate until the files exist, then theirs.
func TestServingCert(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := &servingCert{ctx: ctx, dir: dir, log: logr.Discard()}
	cfg := &tls.Config{}
	c.tlsOpt(cfg)
	if crt, err := cfg.GetCertificate(&tls.ClientHelloInfo{}); err == nil || crt != nil {
		t.Fatalf("before the files: %v, %v", crt, err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "rollguard-webhook.rollguard-system.svc"},
		DNSNames: []string{"rollguard-webhook.rollguard-system.svc"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	crt, err := cfg.GetCertificate(&tls.ClientHelloInfo{})
	if err != nil || crt == nil || len(crt.Certificate) == 0 {
		t.Fatalf("after the files: %v, %v", crt, err)
	}
	leaf, err := x509.ParseCertificate(crt.Certificate[0])
	if err != nil || leaf.SerialNumber.Int64() != 7 {
		t.Errorf("not the files' certificate: %v, %v", leaf, err)
	}
}
