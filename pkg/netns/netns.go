// Package netns implements running code inside a named network namespace
// (one made with `ip netns add`, under /run/netns): sockets opened there
// keep that namespace, so a process in the host's namespace can listen and
// dial inside the lab's and the e2e cluster's isolated networks. Network
// namespaces are a Linux feature, and entering one needs root. On every
// other system the package still builds, so that rollguard does, and each
// function returns ErrUnsupported without doing anything.
package netns

import "errors"

// ErrUnsupported is what every function returns where there are no network
// namespaces; Supported says so in advance.
var ErrUnsupported = errors.New("network namespaces need Linux")
