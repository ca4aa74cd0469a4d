package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
)

// metrics is a scrape of a Prometheus text endpoint.
type metrics []metricLine

type metricLine struct {
	name   string
	labels map[string]string
	value  float64
}

var labelRE = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

func scrape(ctx context.Context, url string) (metrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	var m metrics
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		l := metricLine{labels: map[string]string{}}
		rest := line
		if i := strings.IndexAny(line, "{ "); i > 0 {
			l.name, rest = line[:i], line[i:]
		}
		if strings.HasPrefix(rest, "{") {
			end := strings.LastIndexByte(rest, '}')
			if end < 0 {
				continue
			}
			for _, kv := range labelRE.FindAllStringSubmatch(rest[1:end], -1) {
				l.labels[kv[1]] = kv[2]
			}
			rest = rest[end+1:]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		if l.value, err = strconv.ParseFloat(f[0], 64); err == nil {
			m = append(m, l)
		}
	}
	return m, sc.Err()
}

// sum adds the values of the series called name whose labels match the
// label/value pairs given.
func (m metrics) sum(name string, pairs ...string) float64 {
	var total float64
next:
	for _, l := range m {
		if l.name != name {
			continue
		}
		for i := 0; i+1 < len(pairs); i += 2 {
			if l.labels[pairs[i]] != pairs[i+1] {
				continue next
			}
		}
		total += l.value
	}
	return total
}

// snapshot is what the full manager's own metrics say at one moment: the
// profile behind the figures (how many reconciles, how long each took,
// what waits in the queue, how many requests it sent).
type snapshot struct {
	At                string         `json:"at"`
	Reconciles        int            `json:"reconciles"`
	ReconcileErrors   int            `json:"reconcileErrors"`
	ReconcileMeanSecs float64        `json:"reconcileMeanSeconds"`
	QueueDepth        int            `json:"queueDepth"`
	QueueAdds         int            `json:"queueAdds"`
	Requests          map[string]int `json:"requestsByMethod"`
}

// The controller's name in controller-runtime's metrics.
const controllerName = "tenantidentity"

func takeSnapshot(ctx context.Context, p *proc, at string) (snapshot, error) {
	m, err := scrape(ctx, p.metrics+"/metrics")
	if err != nil {
		return snapshot{}, fmt.Errorf("%s metrics: %w", p.name, err)
	}
	return m.snapshot(at), nil
}

func (m metrics) snapshot(at string) snapshot {
	s := snapshot{
		At:              at,
		Reconciles:      int(m.sum("controller_runtime_reconcile_total", "controller", controllerName)),
		ReconcileErrors: int(m.sum("controller_runtime_reconcile_total", "controller", controllerName, "result", "error")),
		QueueDepth:      int(m.sum("workqueue_depth", "name", controllerName)),
		QueueAdds:       int(m.sum("workqueue_adds_total", "name", controllerName)),
		Requests:        map[string]int{},
	}
	if n := m.sum("controller_runtime_reconcile_time_seconds_count", "controller", controllerName); n > 0 {
		s.ReconcileMeanSecs = m.sum("controller_runtime_reconcile_time_seconds_sum", "controller", controllerName) / n
	}
	for _, l := range m {
		if l.name == "rest_client_requests_total" {
			s.Requests[l.labels["method"]] += int(l.value)
		}
	}
	return s
}

func (s snapshot) writes() int {
	return s.Requests["POST"] + s.Requests["PUT"] + s.Requests["PATCH"] + s.Requests["DELETE"]
}
