package keys

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// secretStrings lists renderings of the materials' private keys that must
// never show up in output: the PEM, each PEM body line, hex of the DER, and
// the private JWK members in base64url.
func secretStrings(t *testing.T, ms ...*Material) []string {
	t.Helper()
	out := []string{"BEGIN", "PRIVATE KEY-----"}
	for _, m := range ms {
		out = append(out, string(m.PrivatePEM))
		block, _ := pem.Decode(m.PrivatePEM)
		for _, line := range strings.Split(string(m.PrivatePEM), "\n") {
			if len(line) >= 16 && !strings.HasPrefix(line, "-----") {
				out = append(out, line)
			}
		}
		b64 := base64.StdEncoding.EncodeToString(block.Bytes)
		out = append(out, b64[len(b64)-32:])
		out = append(out, hex.EncodeToString(block.Bytes[len(block.Bytes)-16:]))
		raw, err := m.PrivateJWK()
		if err != nil {
			t.Fatal(err)
		}
		obj := members(t, raw)
		for _, p := range PrivateMembers {
			if _, ok := obj[p]; ok {
				v := str(t, obj, p)
				b, err := base64.RawURLEncoding.DecodeString(v)
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, v, hex.EncodeToString(b))
			}
		}
	}
	return out
}

func assertNoSecrets(t *testing.T, got string, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(got, s) {
			t.Errorf("output leaks private material %.20q...: %.200s", s, got)
		}
	}
}

func TestMaterialNeverPrintsKey(t *testing.T) {
	t.Parallel()
	for _, alg := range []string{ES256, RS256, EdDSA} {
		t.Run(alg, func(t *testing.T) {
			t.Parallel()
			m := fixture(t, alg, true)
			secrets := secretStrings(t, m)
			want := fmt.Sprintf("keys.Material{kid=%s, alg=%s}", m.KID, alg)
			if got := m.String(); got != want {
				t.Errorf("String() = %q, want %q", got, want)
			}
			if got := m.GoString(); got != want {
				t.Errorf("GoString() = %q, want %q", got, want)
			}
			values := map[string]any{
				"value":          *m,
				"pointer":        m,
				"slice":          []*Material{m},
				"value slice":    []Material{*m},
				"map":            map[string]Material{"k": *m},
				"struct":         struct{ M Material }{*m},
				"struct pointer": struct{ M *Material }{m},
			}
			for name, v := range values {
				for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10.3v"} {
					got := fmt.Sprintf(verb, v)
					assertNoSecrets(t, got, secrets)
					if !strings.Contains(got, want) {
						t.Errorf("%s %s = %.200q, want it to contain %q", name, verb, got, want)
					}
				}
			}
			if got := fmt.Sprintf("%v", *m); got != want {
				t.Errorf("%%v = %q, want %q", got, want)
			}
			if got := fmt.Errorf("loading %v: %w", m, errTest).Error(); !strings.HasPrefix(got, "loading "+want) {
				t.Errorf("wrapped = %q", got)
			}
		})
	}
}

var errTest = fmt.Errorf("test")

func TestMaterialStructuredLogging(t *testing.T) {
	t.Parallel()
	m := fixture(t, PS256, true)
	secrets := secretStrings(t, m)
	for _, v := range []any{*m, m} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf(`{"alg":%q,"kid":%q}`, m.Algorithm, m.KID); string(b) != want {
			t.Errorf("json.Marshal = %s, want %s", b, want)
		}
		var buf bytes.Buffer
		slog.New(slog.NewJSONHandler(&buf, nil)).Info("key", "material", v)
		slog.New(slog.NewTextHandler(&buf, nil)).Info("key", "material", v)
		assertNoSecrets(t, buf.String(), secrets)
		if !strings.Contains(buf.String(), m.KID) {
			t.Errorf("slog output lacks the kid: %s", buf.String())
		}
	}
	if got, ok := m.MarshalLog().(map[string]string); !ok || got["kid"] != m.KID || got["alg"] != m.Algorithm || len(got) != 2 {
		t.Errorf("MarshalLog() = %v", m.MarshalLog())
	}
}
