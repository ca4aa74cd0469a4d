package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// command is one subcommand: its arguments, the flags it takes besides
// the global ones, and what it does.
type command struct {
	args    string   // for the usage line
	summary string   // one line
	nargs   [2]int   // least and most positional arguments
	flags   []string // command-specific flags it accepts
	run     func(ctx context.Context, o *options, stdout, stderr io.Writer) error
}

var commands = map[string]command{
	"status": {args: "[name]", summary: "Show keys (state and timeline) and conditions of one TenantIdentity, or of all in the namespace.",
		nargs: [2]int{0, 1}, flags: []string{"all-namespaces"}, run: runStatus},
	"rotate": {args: "<name>", summary: "Rotate now: a successor is published at once and signs after prePublish.",
		nargs: [2]int{1, 1}, run: runRotate},
	"revoke": {args: "<name> <kid>", summary: "Revoke a key: unpublished and destroyed at once (refuses a kid the TenantIdentity does not have, unless --force).",
		nargs: [2]int{2, 2}, flags: []string{"force"}, run: runRevoke},
	"suspend": {args: "<name>", summary: "Freeze every key change (documents keep being served).",
		nargs: [2]int{1, 1}, run: runSuspend},
	"resume": {args: "<name>", summary: "Undo suspend.",
		nargs: [2]int{1, 1}, run: runResume},
	"jwks": {args: "<name>", summary: "Fetch what the JWKS server serves for the TenantIdentity and compare it with its ConfigMap (exit 1 when they differ).",
		nargs: [2]int{1, 1}, flags: []string{"server", "ca-file"}, run: runJWKS},
	"token": {args: "<name>", summary: "Get a token from the token API, authenticated by --token-file or a TokenRequest for --service-account.",
		nargs: [2]int{1, 1}, flags: []string{"server", "ca-file", "token-file", "service-account", "audience", "expiration", "review-audience", "output"}, run: runToken},
}

// options are the parsed command line.
type options struct {
	flags   *pflag.FlagSet
	command string
	args    []string

	kubeconfig, context, namespace string
	allNamespaces                  bool
	force                          bool
	server, caFile                 string
	tokenFile, serviceAccount      string
	audiences                      []string
	expiration                     time.Duration
	reviewAudience                 string
	output                         string
}

// globalFlags are accepted by every command.
var globalFlags = []string{"kubeconfig", "context", "namespace", "help"}

func newFlagSet(o *options) *pflag.FlagSet {
	fs := pflag.NewFlagSet("kubectl signet", pflag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are returned and printed once by run
	fs.SortFlags = false
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "Path to the kubeconfig file (default $KUBECONFIG, then ~/.kube/config).")
	fs.StringVar(&o.context, "context", "", "The kubeconfig context to use.")
	fs.StringVarP(&o.namespace, "namespace", "n", "", "Namespace of the TenantIdentity (default: the context's).")
	fs.BoolVarP(&o.allNamespaces, "all-namespaces", "A", false, "status: every namespace.")
	fs.BoolVar(&o.force, "force", false, "revoke: revoke a kid the TenantIdentity does not list.")
	fs.StringVar(&o.server, "server", "", "jwks: base URL of the JWKS server (default: status.jwksURI); token: base URL of the token API (required).")
	fs.StringVar(&o.caFile, "ca-file", "", "jwks, token: PEM CA bundle that signs the server's certificate (default: the system's roots).")
	fs.StringVar(&o.tokenFile, "token-file", "", "token: file holding the bearer token (a Kubernetes service account token).")
	fs.StringVar(&o.serviceAccount, "service-account", "", "token: get the bearer token with a TokenRequest for this ServiceAccount of the namespace.")
	fs.StringSliceVar(&o.audiences, "audience", nil, "token: audience of the token (repeatable; default: the TenantIdentity's defaultAudience).")
	fs.DurationVar(&o.expiration, "expiration", 0, "token: lifetime of the token (default and maximum: keys.tokenTTL).")
	fs.StringVar(&o.reviewAudience, "review-audience", "signet", "token: audience of the TokenRequest, the manager's --token-review-audience.")
	fs.StringVarP(&o.output, "output", "o", "", "token: json prints the whole response instead of the token alone.")
	fs.BoolP("help", "h", false, "Show this help.")
	return fs
}

// parseArgs parses flags anywhere on the line (kubectl users put -n
// before or after the command) and checks them against the command.
func parseArgs(args []string) (*options, error) {
	o := &options{}
	o.flags = newFlagSet(o)
	if err := o.flags.Parse(args); err != nil {
		return o, err
	}
	if help, _ := o.flags.GetBool("help"); help {
		return o, pflag.ErrHelp
	}
	rest := o.flags.Args()
	if len(rest) == 0 {
		return o, fmt.Errorf("no command given")
	}
	o.command, o.args = rest[0], rest[1:]
	cmd, ok := commands[o.command]
	if !ok {
		return o, fmt.Errorf("unknown command %q (want one of %s)", o.command, strings.Join(commandNames(), ", "))
	}
	if n := len(o.args); n < cmd.nargs[0] || n > cmd.nargs[1] {
		return o, fmt.Errorf("usage: kubectl signet %s %s", o.command, cmd.args)
	}
	var stray []string
	o.flags.Visit(func(f *pflag.Flag) {
		if !slices.Contains(globalFlags, f.Name) && !slices.Contains(cmd.flags, f.Name) {
			stray = append(stray, "--"+f.Name)
		}
	})
	if len(stray) > 0 {
		return o, fmt.Errorf("%s does not take %s", o.command, strings.Join(stray, ", "))
	}
	return o, o.validate()
}

// validate checks what the flag types cannot.
func (o *options) validate() error {
	switch {
	case o.allNamespaces && len(o.args) > 0:
		return fmt.Errorf("status: a name and --all-namespaces exclude each other")
	case o.allNamespaces && o.namespace != "":
		return fmt.Errorf("status: --namespace and --all-namespaces exclude each other")
	case o.output != "" && o.output != "json":
		return fmt.Errorf("--output %q: want json", o.output)
	case o.expiration < 0 || o.expiration%time.Second != 0:
		return fmt.Errorf("--expiration %s: want a positive whole number of seconds, such as 10m", o.expiration)
	}
	if o.command == "token" {
		if o.server == "" {
			return fmt.Errorf("token: --server is required (the token API's base URL, e.g. https://signet-jwks.signet-system.svc:9443)")
		}
		if (o.tokenFile == "") == (o.serviceAccount == "") {
			return fmt.Errorf("token: give exactly one of --token-file and --service-account")
		}
	}
	return nil
}

func commandNames() []string {
	names := make([]string, 0, len(commands))
	for name := range commands {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

func usage(fs *pflag.FlagSet) string {
	var b strings.Builder
	b.WriteString("kubectl signet: drive signet's TenantIdentities.\n\nCommands:\n")
	for _, name := range commandNames() {
		c := commands[name]
		fmt.Fprintf(&b, "  %-8s %-14s %s\n", name, c.args, c.summary)
	}
	b.WriteString("\nFlags:\n")
	if fs != nil {
		b.WriteString(fs.FlagUsages())
	}
	b.WriteString("\nExamples:\n" +
		"  kubectl signet status -n tenant-acme acme-dc1\n" +
		"  kubectl signet rotate -n tenant-acme acme-dc1\n" +
		"  kubectl signet revoke -n tenant-acme acme-dc1 <kid>\n" +
		"  kubectl signet jwks -n tenant-acme acme-dc1 --ca-file ca.crt\n" +
		"  kubectl signet token -n tenant-acme acme-dc1 --server https://signet-jwks.signet-system.svc:9443 --service-account my-workload\n")
	return b.String()
}
