// Package prometheus holds the tests of the monitoring manifests in this
// directory: promtool checks and unit tests of the alerts, the dashboard's
// queries, and a server-side dry run of the kustomization. The manifests
// are the artifact; there is no Go code to ship here.
package prometheus
