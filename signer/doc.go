// Package signer holds the device key and the EIP-712 mileage attestation: its typed-data hash, signing, recovery, verification, wire form and chain checks.
//
// # Attestation
//
// An [Attestation] is the EIP-712 typed-data message of README §C1. Its digest is
//
//	keccak256(0x19 0x01 || domainSeparator(chainID) || hashStruct(attestation))
//
// with the domain EIP712Domain(string name,string version,uint256 chainId),
// name "CSOP Mileage", version "1", and the primary type
//
//	MileageAttestation(address device,uint64 seq,uint64 batch,uint32 batches,uint64 meters,ModeMeters[] modes,bytes32 prev,uint32 flags)ModeMeters(string mode,uint64 meters)
//
// so any Ethereum tool (ethers' verifyTypedData, a Solidity contract with
// ecrecover, OpenZeppelin's EIP712) checks it without knowing this project.
// The signature is 65 bytes r||s||v with v in {27, 28} and s in the lower half
// of the group order; [Verify] refuses the high-s twin of a valid signature.
//
// # Keys
//
// The device key lives in a [FileKey]: a SEC1 "EC PRIVATE KEY" PEM file on the
// secp256k1 curve, mode 0600, readable by openssl. The rest of the agent only
// sees the [Signer] interface, so a secure element can replace the file later.
// A FileKey prints, formats and logs as REDACTED, and no method returns its
// private scalar.
//
// # Chains
//
// A device's attestations form a hash chain: seq 1, 2, 3, ... with each prev
// holding the digest signed for seq-1. A [ChainChecker] fed attestations in
// order reports every break as a [Problem].
package signer
