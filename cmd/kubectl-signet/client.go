package main

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
)

// cluster is a client for the kubeconfig's cluster and the namespace the
// command works in.
type cluster struct {
	client.Client
	namespace string
}

// connect loads the kubeconfig the way kubectl does: --kubeconfig, else
// $KUBECONFIG, else ~/.kube/config; --context and -n override it.
func connect(o *options) (*cluster, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = o.kubeconfig
	overrides := &clientcmd.ConfigOverrides{CurrentContext: o.context}
	overrides.Context.Namespace = o.namespace
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	ns, _, err := cc.Namespace()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	cfg.UserAgent = "kubectl-signet"
	c, err := client.New(cfg, client.Options{Scheme: scheme()})
	if err != nil {
		return nil, err
	}
	return &cluster{Client: c, namespace: ns}, nil
}

func scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(identityv1alpha1.AddToScheme(s))
	return s
}

// tenantIdentity gets one TenantIdentity, with a message that names the
// namespace when it is not there.
func (c *cluster) tenantIdentity(ctx context.Context, name string) (*identityv1alpha1.TenantIdentity, error) {
	ti := &identityv1alpha1.TenantIdentity{}
	err := c.Get(ctx, client.ObjectKey{Namespace: c.namespace, Name: name}, ti)
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("tenantidentity %q not found in namespace %q", name, c.namespace)
	}
	if err != nil {
		return nil, err
	}
	return ti, nil
}
