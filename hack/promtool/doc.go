// Package promtool pins Prometheus' promtool in a module of its own (its
// dependency tree is large and must not reach the operator's go.mod). The
// Makefile builds bin/promtool from here to check and unit-test the alert
// rules in config/prometheus.
package promtool
