package rules

import "testing"

// TestMinimalImage: the names of images without a shell, and of their
// variants with one (which an exec sleep works in).
func TestMinimalImage(t *testing.T) {
	t.Parallel()
	for image, want := range map[string]bool{
		"gcr.io/distroless/static-debian12:nonroot":      true,
		"gcr.io/distroless/base":                         true,
		"gcr.io/distroless/base@sha256:0123abcd":         true,
		"gcr.io/distroless/base:nonroot@sha256:0123abcd": true,
		"cgr.dev/chainguard/nginx:latest":                true,
		"registry.example.com:5000/team/app-chainguard":  true,
		"scratch":                                                true,
		"gcr.io/distroless/base:debug":                           false,
		"gcr.io/distroless/base:debug-nonroot":                   false,
		"cgr.dev/chainguard/nginx:latest-dev":                    false,
		"cgr.dev/chainguard/python:3.12-dev-r1":                  false,
		"cgr.dev/chainguard/busybox":                             false,
		"cgr.dev/chainguard/wolfi-base:latest":                   false,
		"registry.example.com:5000/team/app":                     false,
		"nginx:1.27":                                             false,
		"example.com/distroless-debug-tools:dev":                 false,
		"registry.example.com:5000/distroless/app:nonroot-debug": true,
	} {
		if got := minimalImage(image); got != want {
			t.Errorf("minimalImage(%q) = %v, want %v", image, got, want)
		}
	}
}
