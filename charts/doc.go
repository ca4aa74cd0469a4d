// Package charts holds the tests of the Helm chart in charts/signet: helm
// lint and template, the rendered RBAC against config/rbac, and a
// server-side dry run of the rendered objects against envtest. There is no
// Go code to ship here; the chart is the artifact.
package charts
