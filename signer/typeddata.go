package signer

import (
	"encoding/binary"

	"golang.org/x/crypto/sha3"
)

// The EIP-712 domain of the attestation.
const (
	DomainName    = "CSOP Mileage"
	DomainVersion = "1"
)

// EIP-712 type strings: encodeType of each struct, with referenced struct
// types appended sorted by name.
const (
	domainType      = "EIP712Domain(string name,string version,uint256 chainId)"
	modeMetersType  = "ModeMeters(string mode,uint64 meters)"
	attestationType = "MileageAttestation(address device,uint64 seq,uint64 batch,uint32 batches,uint64 meters,ModeMeters[] modes,bytes32 prev,uint32 flags)" + modeMetersType
)

var (
	domainTypeHash      = keccak256([]byte(domainType))
	modeMetersTypeHash  = keccak256([]byte(modeMetersType))
	attestationTypeHash = keccak256([]byte(attestationType))
	domainNameHash      = keccak256([]byte(DomainName))
	domainVersionHash   = keccak256([]byte(DomainVersion))
)

// Domain is the EIP-712 domain of attestations: name [DomainName], version
// [DomainVersion] and the chain ID of the deployment.
type Domain struct {
	ChainID uint64
}

// Separator returns the domain separator, hashStruct(EIP712Domain).
func (d Domain) Separator() [32]byte {
	chain := uintWord(d.ChainID)
	return keccak256(domainTypeHash[:], domainNameHash[:], domainVersionHash[:], chain[:])
}

// DomainSeparator returns the domain separator for chainID.
func DomainSeparator(chainID uint64) [32]byte {
	return Domain{ChainID: chainID}.Separator()
}

// HashStruct returns the EIP-712 hashStruct of the attestation. V and Sig are
// not part of the typed data.
func (a *Attestation) HashStruct() [32]byte {
	h := sha3.NewLegacyKeccak256()
	var w [32]byte
	h.Write(attestationTypeHash[:])
	w = addressWord(a.Device)
	h.Write(w[:])
	w = uintWord(a.Seq)
	h.Write(w[:])
	w = uintWord(a.Batch)
	h.Write(w[:])
	w = uintWord(uint64(a.Batches))
	h.Write(w[:])
	w = uintWord(a.Meters)
	h.Write(w[:])
	w = modesHash(a.Modes)
	h.Write(w[:])
	h.Write(a.Prev[:])
	w = uintWord(uint64(a.Flags))
	h.Write(w[:])
	h.Sum(w[:0])
	return w
}

// hashStruct returns the EIP-712 hashStruct of one ModeMeters.
func (m ModeMeters) hashStruct() [32]byte {
	name := keccak256([]byte(m.Mode))
	meters := uintWord(m.Meters)
	return keccak256(modeMetersTypeHash[:], name[:], meters[:])
}

// modesHash encodes a ModeMeters[] value: keccak256 of the concatenated
// hashStructs of its elements (keccak256 of nothing for an empty array).
func modesHash(modes []ModeMeters) [32]byte {
	h := sha3.NewLegacyKeccak256()
	for _, m := range modes {
		s := m.hashStruct()
		h.Write(s[:])
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// Digest returns the digest that is signed for the attestation on chainID:
// keccak256(0x19 0x01 || domainSeparator || hashStruct).
func Digest(chainID uint64, a *Attestation) [32]byte {
	sep := DomainSeparator(chainID)
	st := a.HashStruct()
	return keccak256([]byte{0x19, 0x01}, sep[:], st[:])
}

func keccak256(parts ...[]byte) [32]byte {
	h := sha3.NewLegacyKeccak256()
	for _, p := range parts {
		h.Write(p)
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// uintWord encodes an unsigned integer as a 32-byte big-endian ABI word.
// Not inlined: its byte shuffle would be copied into each hash.
//
//go:noinline
func uintWord(v uint64) [32]byte {
	var w [32]byte
	binary.BigEndian.PutUint64(w[24:], v)
	return w
}

// addressWord encodes an address as a 32-byte ABI word, left-padded.
func addressWord(a Address) [32]byte {
	var w [32]byte
	copy(w[12:], a[:])
	return w
}
