package pki

import (
	"encoding/hex"
	"math/big"
)

// serialFromDecimal converts step-ca's decimal serial strings to Lanyard's hex form.
func serialFromDecimal(sn string) string {
	n, ok := new(big.Int).SetString(sn, 10)
	if !ok {
		return sn
	}
	return hex.EncodeToString(n.Bytes())
}
