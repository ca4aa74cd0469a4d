package cacheopts

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
	"github.com/signet-dev/signet/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// A tenant fills its namespace with ConfigMaps of 900 KiB that carry the
// jwks label signet's informers select on (anyone may set a label), some
// posing as a TenantIdentity's own. The trimmed cache holds them as
// metadata: its heap grows by a small fraction of their size. The same
// objects in a cache without the transforms grow it by about their size,
// which shows the measurement can tell.
func TestJunkConfigMapsDoNotGrowMemory(t *testing.T) {
	ctx := context.Background()
	ns := env.Namespace(t, nil)
	const n, size = 40, 900 << 10
	junk := strings.Repeat("x", size)
	for i := range n {
		cm := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("junk-%d", i), Namespace: ns,
				Labels: map[string]string{identityv1alpha1.LabelComponent: identityv1alpha1.ComponentJWKS}},
			Data: map[string]string{"junk.json": junk},
		}
		if i%2 == 1 { // posing as a TenantIdentity's: controlled by one, but not named after it
			cm.OwnerReferences = []metav1.OwnerReference{{APIVersion: identityv1alpha1.GroupVersion.String(), Kind: "TenantIdentity",
				Name: "acme", UID: "u", Controller: ptr.To(true)}}
		}
		if err := env.Client.Create(ctx, cm); err != nil {
			t.Fatal(err)
		}
	}
	total := float64(n * size)
	// A cache of an empty namespace measures what a cache costs by itself.
	empty := env.Namespace(t, nil)
	overhead := heapGrowth(t, empty, 0, Options(Config{WatchNamespace: empty, SystemNamespace: "signet-system"}))
	trimmed := heapGrowth(t, ns, n, Options(Config{WatchNamespace: ns, SystemNamespace: "signet-system"})) - overhead
	untrimmed := heapGrowth(t, ns, n, cache.Options{DefaultNamespaces: map[string]cache.Config{ns: {}}}) - overhead
	t.Logf("%d junk ConfigMaps, %.1f MiB in all: the trimmed cache grew by %.2f MiB, an untrimmed one by %.1f MiB",
		n, total/(1<<20), trimmed/(1<<20), untrimmed/(1<<20))
	// What stays is the metadata, and the buffer the informer's stream
	// decoder keeps at the size of the largest object it read: bounded by
	// one object, whatever the count.
	if limit := 2*float64(size) + 0.02*total; trimmed > limit {
		t.Errorf("the trimmed cache grew by %.2f MiB for %.1f MiB of junk: more than %.2f MiB", trimmed/(1<<20), total/(1<<20), limit/(1<<20))
	}
	if untrimmed < 0.5*total {
		t.Errorf("an untrimmed cache grew by only %.1f MiB for %.1f MiB: the measurement cannot tell", untrimmed/(1<<20), total/(1<<20))
	}
}

// heapGrowth starts a cache with opts, waits until it holds the n
// ConfigMaps of ns, and returns how much the live heap grew.
func heapGrowth(t *testing.T, ns string, n int, opts cache.Options) float64 {
	t.Helper()
	opts.Scheme = testenv.Scheme()
	before := liveHeap()
	c, err := cache.New(env.Config, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	if _, err := c.GetInformer(ctx, &corev1.ConfigMap{}); err != nil {
		t.Fatal(err)
	}
	go func() { defer close(done); _ = c.Start(ctx) }()
	defer func() { cancel(); <-done }()
	if !c.WaitForCacheSync(ctx) {
		t.Fatal("cache did not sync")
	}
	deadline := time.Now().Add(time.Minute)
	for {
		var list corev1.ConfigMapList
		if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		if len(list.Items) == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cache holds %d of %d ConfigMaps", len(list.Items), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return float64(liveHeap()) - float64(before)
}

func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
