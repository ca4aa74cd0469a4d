#!/usr/bin/env bash
# Refreshes the third-party CRDs that the chart's and config/prometheus'
# tests install into envtest, so `kubectl apply --dry-run=server` checks
# the Certificate, ServiceMonitor and PrometheusRule against their real
# schemas. They come from the Go module proxy, like every other tool here.
set -euo pipefail
PROMETHEUS_OPERATOR=${PROMETHEUS_OPERATOR:-v0.85.0}
CERT_MANAGER=${CERT_MANAGER:-v1.21.2}
cd "$(dirname "$0")"
moddir() { go mod download -json "$1@$2" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p'; }
po=$(moddir github.com/prometheus-operator/prometheus-operator "$PROMETHEUS_OPERATOR")
cm=$(moddir github.com/cert-manager/cert-manager "$CERT_MANAGER")
install -m 0644 "$po"/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml \
  "$po"/example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml .
install -m 0644 "$cm"/deploy/crds/cert-manager.io_certificates.yaml .
echo "prometheus-operator $PROMETHEUS_OPERATOR, cert-manager $CERT_MANAGER" > VERSIONS
