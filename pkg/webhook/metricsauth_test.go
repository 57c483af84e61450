package webhook

import (
	"errors"
	"net/http"
	"net/http/httptest"
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
// fail makes every review an error. It counts the reviews.
type reviewer struct {
	tokens  map[string]string
	allowed map[string]bool
	fail    atomic.Bool
	calls   atomic.Int32
}

func (rv *reviewer) client() *fake.Clientset {
	c := fake.NewClientset()
	c.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		rv.calls.Add(1)
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
		rv.calls.Add(1)
		sar := a.(k8stesting.CreateAction).GetObject().(*authzv1.SubjectAccessReview).DeepCopy()
		s := sar.Spec
		ok := rv.allowed[s.User] && s.NonResourceAttributes != nil && s.NonResourceAttributes.Path == "/metrics" &&
			s.NonResourceAttributes.Verb == "get" && len(s.Groups) == 1 && s.Extra["k"][0] == "v"
		sar.Status.Allowed = ok
		return true, sar, nil
	})
	return c
}

func TestMetricsAuth(t *testing.T) {
	t.Parallel()
	rv := &reviewer{tokens: map[string]string{"good": "prometheus", "other": "someone"}, allowed: map[string]bool{"prometheus": true}}
	a := newMetricsAuth(rv.client(), logr.Discard())
	now := time.Unix(1000, 0)
	a.now = func() time.Time { return now }
	h, err := a.filter(logr.Discard(), http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("metrics")) }))
	if err != nil {
		t.Fatal(err)
	}
	get := func(method, path, auth string) int {
		r := httptest.NewRequest(method, path, nil)
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	for _, tc := range []struct {
		name, method, path, auth string
		want                     int
	}{
		{"no token", "GET", "/metrics", "", http.StatusUnauthorized},
		{"not a bearer token", "GET", "/metrics", "Basic Z29vZA==", http.StatusUnauthorized},
		{"an empty bearer token", "GET", "/metrics", "Bearer  ", http.StatusUnauthorized},
		{"a token the API server does not know", "GET", "/metrics", "Bearer bad", http.StatusUnauthorized},
		{"a user without the right", "GET", "/metrics", "Bearer other", http.StatusForbidden},
		{"another path", "GET", "/debug", "Bearer good", http.StatusForbidden},
		{"another verb", "POST", "/metrics", "Bearer good", http.StatusForbidden},
		{"a user with the right", "GET", "/metrics", "Bearer good", http.StatusOK},
	} {
		if got := get(tc.method, tc.path, tc.auth); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}

	// Within the ttl the verdicts come from the cache, denials too.
	calls := rv.calls.Load()
	if get("GET", "/metrics", "Bearer good") != http.StatusOK || get("GET", "/metrics", "Bearer other") != http.StatusForbidden || rv.calls.Load() != calls {
		t.Errorf("the cache was not used: %d reviews, %d before", rv.calls.Load(), calls)
	}
	// After it the API server is asked again; a failed review answers 500
	// and is not cached.
	now = now.Add(a.ttl)
	rv.fail.Store(true)
	if got := get("GET", "/metrics", "Bearer good"); got != http.StatusInternalServerError {
		t.Errorf("a failed review: %d, want 500", got)
	}
	rv.fail.Store(false)
	calls = rv.calls.Load()
	if got := get("GET", "/metrics", "Bearer good"); got != http.StatusOK || rv.calls.Load() != calls+2 {
		t.Errorf("after a failed review: %d with %d reviews, want 200 with 2", got, rv.calls.Load()-calls)
	}
}

// TestMetricsAuthBounded: bad tokens cannot grow the cache past its bound.
func TestMetricsAuthBounded(t *testing.T) {
	t.Parallel()
	rv := &reviewer{}
	a := newMetricsAuth(rv.client(), logr.Discard())
	for i := range 3 * maxAnswers {
		r := httptest.NewRequest("GET", "/metrics", nil)
		r.Header.Set("Authorization", "Bearer t"+string(rune('a'+i%26))+time.Duration(i).String())
		if ans := a.verdict(r); ans.status != http.StatusUnauthorized {
			t.Fatalf("a bad token: %d", ans.status)
		}
	}
	if n := len(a.answers); n == 0 || n > maxAnswers {
		t.Errorf("%d cached answers, want 1 to %d", n, maxAnswers)
	}
}
