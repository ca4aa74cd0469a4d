package keys

import (
	"bytes"
	"encoding/pem"
	"fmt"
)

// PEM block types signet writes and accepts.
const (
	pemPrivateKey  = "PRIVATE KEY" // PKCS#8
	pemCertificate = "CERTIFICATE"
)

func encodePEM(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// decodePEM returns the DER of the single PEM block of type want. It refuses
// other block types with a hint, PEM headers (encrypted keys) and trailing
// data, so a Secret holds exactly one well-formed key and nothing else.
func decodePEM(data []byte, want, what string) ([]byte, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("keys: %s: no PEM block found", what)
	}
	if block.Type != want {
		return nil, fmt.Errorf("keys: %s: PEM block type %q%s, want %q", what, truncate(block.Type, 40), formatHint(block.Type), want)
	}
	if len(block.Headers) != 0 {
		return nil, fmt.Errorf("keys: %s: PEM headers are not supported (encrypted keys are refused)", what)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("keys: %s: unexpected data after the PEM block", what)
	}
	return block.Bytes, nil
}

// formatHint names the legacy encodings people most often store by mistake.
func formatHint(typ string) string {
	switch typ {
	case "RSA PRIVATE KEY":
		return " (PKCS#1)"
	case "EC PRIVATE KEY":
		return " (SEC 1)"
	}
	return ""
}
