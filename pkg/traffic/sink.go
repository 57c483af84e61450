package traffic

import (
	"encoding/json"
	"io"
	"sync"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Summary counts outcomes by class and keeps latency histograms per class
// and overall: bounded memory whatever the number of requests.
type Summary struct {
	mu      sync.Mutex
	Total   int
	Late    int
	ByClass map[Class]int
	hist    map[Class]*hdrhistogram.Histogram
	all     *hdrhistogram.Histogram
}

// NewSummary returns an empty summary. Latencies from 1µs to 1 minute are
// kept with 3 significant digits.
func NewSummary() *Summary {
	return &Summary{ByClass: map[Class]int{}, hist: map[Class]*hdrhistogram.Histogram{}, all: newHist()}
}

func newHist() *hdrhistogram.Histogram {
	return hdrhistogram.New(1, int64(time.Minute/time.Microsecond), 3)
}

// Add records one outcome.
func (s *Summary) Add(r Record) {
	us := max(int64(r.Latency/time.Microsecond), 1)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Total++
	s.ByClass[r.Class]++
	if r.Late {
		s.Late++
	}
	h := s.hist[r.Class]
	if h == nil {
		h = newHist()
		s.hist[r.Class] = h
	}
	_ = h.RecordValue(us)
	_ = s.all.RecordValue(us)
}

// Failed is the number of failed requests.
func (s *Summary) Failed() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Total - s.ByClass[OK]
}

// Quantile returns a latency quantile (0 to 100) of one class, or of all
// requests when class is "".
func (s *Summary) Quantile(class Class, q float64) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.all
	if class != "" {
		h = s.hist[class]
	}
	if h == nil {
		return 0
	}
	return time.Duration(h.ValueAtQuantile(q)) * time.Microsecond
}

// Failures keeps the failed records only: a rollout's failures are few,
// whatever the number of requests.
type Failures struct {
	mu      sync.Mutex
	Records []Record
}

// Add keeps r when it failed.
func (f *Failures) Add(r Record) {
	if !r.Class.Failed() {
		return
	}
	f.mu.Lock()
	f.Records = append(f.Records, r)
	f.mu.Unlock()
}

// Memory keeps every record, for tests and short runs.
type Memory struct {
	mu      sync.Mutex
	Records []Record
}

// Add keeps r.
func (m *Memory) Add(r Record) {
	m.mu.Lock()
	m.Records = append(m.Records, r)
	m.mu.Unlock()
}

// JSONLines writes each record as one JSON line.
type JSONLines struct {
	mu  sync.Mutex
	enc *json.Encoder
	Err error // the first write error
}

// NewJSONLines writes records to w.
func NewJSONLines(w io.Writer) *JSONLines { return &JSONLines{enc: json.NewEncoder(w)} }

// Add writes r.
func (j *JSONLines) Add(r Record) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.enc.Encode(r); err != nil && j.Err == nil {
		j.Err = err
	}
}
