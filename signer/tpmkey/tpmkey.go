// Package tpmkey keeps the device key sealed by a TPM 2.0.
//
// TPM 2.0 has no secp256k1, so the TPM cannot hold the key as a signing
// key. Instead the 32-byte scalar is sealed as a keyed-hash data object
// under the TPM's storage root key (the ECC SRK of the owner hierarchy,
// derived again at every use from the TPM's owner seed), with a policy of
// the selected PCRs. The sealed file is useless anywhere else: only this
// TPM can load it (another TPM has another seed), and only while the PCRs
// hold the values they held at sealing (the same boot chain) will it
// unseal. Unsealed, the key lives in locked memory ([signer.MemKey]) and is
// zeroed by Close.
//
// # The sealed file
//
// A PEM block "TBOX TPM SEALED KEY" with the headers Address (the key's
// address, so that it can be printed without the TPM) and PCRs (the sha256
// bank's PCR indexes of the policy), and a body of two length-prefixed
// (2 bytes, big-endian) TPM structures: TPM2B_PUBLIC then TPM2B_PRIVATE of
// the sealed object, as TPM2_Create returned them.
package tpmkey

import (
	"bytes"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/linuxtpm"
	"github.com/google/go-tpm/tpm2/transport/linuxudstpm"

	"github.com/csop/tbox/signer"
)

// DefaultDevice is the kernel's TPM resource manager.
const DefaultDevice = "/dev/tpmrm0"

// DefaultPCRs is the policy's PCR selection when none is given: PCR 7, the
// secure boot state (which keys and which boot chain).
var DefaultPCRs = []int{7}

const pemType = "TBOX TPM SEALED KEY"

// maxFileSize bounds what is read of a sealed file (about 600 bytes).
const maxFileSize = 16 << 10

var (
	// ErrPCRMismatch: the PCRs do not hold the values of the sealing (the
	// device booted another chain, or was tampered with).
	ErrPCRMismatch = errors.New("the TPM's PCRs differ from when the key was sealed")
	// ErrForeignTPM: the TPM cannot load the sealed object, which another
	// TPM (or another owner seed) made.
	ErrForeignTPM = errors.New("the sealed key was not made by this TPM")
	// ErrBadFile: the sealed file is malformed.
	ErrBadFile = errors.New("malformed sealed key file")
)

// Error is an error about a sealed key: the file, the TPM, and what
// happened. Err is one of the sentinels above, signer.ErrBadKey, or an
// error of the TPM or the file system.
type Error struct {
	Path   string
	Device string
	Op     string // "seal", "unseal", "read"
	Err    error
}

func (e *Error) Error() string {
	s := "TPM-sealed key " + e.Path
	if e.Device != "" {
		s += " (TPM " + e.Device + ")"
	}
	s += ": " + e.Op + ": " + e.Err.Error()
	switch {
	case errors.Is(e.Err, ErrPCRMismatch):
		s += "; the device booted another chain than the one the key was sealed for: re-provision the key (tboxctl keygen --tpm) after an intended update"
	case errors.Is(e.Err, ErrForeignTPM):
		s += "; this file belongs to another device"
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Open opens a TPM: a character device (/dev/tpmrm0), or a unix socket
// (swtpm's --server type=unixio).
func Open(device string) (transport.TPMCloser, error) {
	fi, err := os.Stat(device)
	if err != nil {
		return nil, fmt.Errorf("TPM %s: %w", device, err)
	}
	if fi.Mode()&os.ModeSocket != 0 {
		return linuxudstpm.Open(device)
	}
	t, err := linuxtpm.Open(device)
	if err != nil {
		return nil, fmt.Errorf("TPM %s: %w", device, err)
	}
	return t, nil
}

// sealed is the content of a sealed file.
type sealed struct {
	addr signer.Address
	pcrs []int
	pub  tpm2.TPM2BPublic
	priv tpm2.TPM2BPrivate
}

func pcrSelection(pcrs []int) tpm2.TPMLPCRSelection {
	u := make([]uint, len(pcrs))
	for i, p := range pcrs {
		u[i] = uint(p)
	}
	return tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{{
		Hash:      tpm2.TPMAlgSHA256,
		PCRSelect: tpm2.PCClientCompatible.PCRs(u...),
	}}}
}

// srk creates the owner hierarchy's ECC storage root key (the same key at
// every call on one TPM); the caller flushes it.
func srk(t transport.TPM) (*tpm2.CreatePrimaryResponse, error) {
	rsp, err := tpm2.CreatePrimary{
		PrimaryHandle: tpm2.TPMRHOwner,
		InPublic:      tpm2.New2B(tpm2.ECCSRKTemplate),
	}.Execute(t)
	if err != nil {
		return nil, fmt.Errorf("storage root key: %w", err)
	}
	return rsp, nil
}

func flush(t transport.TPM, h tpm2.TPMHandle) {
	tpm2.FlushContext{FlushHandle: h}.Execute(t)
}

// policySession starts a policy session bound to the current values of
// pcrs; trial computes the digest only. The caller calls the closer.
func policySession(t transport.TPM, pcrs []int, trial bool) (tpm2.Session, func() error, error) {
	var opts []tpm2.AuthOption
	if trial {
		opts = append(opts, tpm2.Trial())
	}
	sess, closer, err := tpm2.PolicySession(t, tpm2.TPMAlgSHA256, 16, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("policy session: %w", err)
	}
	if _, err := (tpm2.PolicyPCR{PolicySession: sess.Handle(), Pcrs: pcrSelection(pcrs)}).Execute(t); err != nil {
		closer()
		return nil, nil, fmt.Errorf("policy PCR: %w", err)
	}
	return sess, closer, nil
}

func checkPCRs(pcrs []int) error {
	if len(pcrs) == 0 {
		return errors.New("no PCR selected")
	}
	for _, p := range pcrs {
		if p < 0 || p > 23 {
			return fmt.Errorf("PCR %d: want 0..23", p)
		}
	}
	return nil
}

// Generate makes a new device key, seals it in the TPM t under a policy of
// pcrs (sha256 bank; nil: DefaultPCRs), writes the sealed file at path
// (mode 0600, never overwriting) and returns the key's address. The key
// leaves no copy in the clear.
func Generate(t transport.TPM, path string, pcrs []int) (signer.Address, error) {
	if pcrs == nil {
		pcrs = DefaultPCRs
	}
	pcrs = slices.Sorted(slices.Values(slices.Compact(slices.Sorted(slices.Values(pcrs)))))
	fail := func(err error) (signer.Address, error) {
		return signer.Address{}, &Error{Path: path, Op: "seal", Err: err}
	}
	if err := checkPCRs(pcrs); err != nil {
		return fail(err)
	}
	if _, err := os.Lstat(path); err == nil {
		return fail(fmt.Errorf("already exists; refusing to overwrite a key: %w", os.ErrExist))
	}
	scalar, err := signer.GenerateScalar()
	if err != nil {
		return fail(err)
	}
	defer clear(scalar)
	k, err := signer.NewMemKey(scalar)
	if err != nil {
		return fail(err)
	}
	addr := k.Address()
	k.Close()

	sess, closer, err := policySession(t, pcrs, true)
	if err != nil {
		return fail(err)
	}
	dg, err := tpm2.PolicyGetDigest{PolicySession: sess.Handle()}.Execute(t)
	closer()
	if err != nil {
		return fail(fmt.Errorf("policy digest: %w", err))
	}
	parent, err := srk(t)
	if err != nil {
		return fail(err)
	}
	defer flush(t, parent.ObjectHandle)
	sensitive := tpm2.TPM2BSensitiveData{Buffer: scalar}
	rsp, err := tpm2.Create{
		ParentHandle: tpm2.AuthHandle{Handle: parent.ObjectHandle, Name: parent.Name, Auth: tpm2.PasswordAuth(nil)},
		InSensitive: tpm2.TPM2BSensitiveCreate{Sensitive: &tpm2.TPMSSensitiveCreate{
			Data: tpm2.NewTPMUSensitiveCreate(&sensitive),
		}},
		InPublic: tpm2.New2B(tpm2.TPMTPublic{
			Type:    tpm2.TPMAlgKeyedHash,
			NameAlg: tpm2.TPMAlgSHA256,
			ObjectAttributes: tpm2.TPMAObject{
				FixedTPM:    true,
				FixedParent: true,
				// No UserWithAuth: only the PCR policy opens it.
				NoDA: true,
			},
			AuthPolicy: dg.PolicyDigest,
		}),
	}.Execute(t, tpm2.HMAC(tpm2.TPMAlgSHA256, 16, tpm2.AESEncryption(128, tpm2.EncryptIn),
		tpm2.Salted(parent.ObjectHandle, *mustPublic(parent))))
	if err != nil {
		return fail(fmt.Errorf("create sealed object: %w", err))
	}
	data := encode(sealed{addr: addr, pcrs: pcrs, pub: rsp.OutPublic, priv: rsp.OutPrivate})
	if err := signer.WriteNewKeyFile(path, data); err != nil {
		return fail(err)
	}
	return addr, nil
}

func mustPublic(rsp *tpm2.CreatePrimaryResponse) *tpm2.TPMTPublic {
	p, err := rsp.OutPublic.Contents()
	if err != nil {
		// The TPM returned it a moment ago; go-tpm parsed it already.
		panic(fmt.Sprintf("tpmkey: SRK public area: %v", err))
	}
	return p
}

func encode(s sealed) []byte {
	var body bytes.Buffer
	for _, part := range [][]byte{tpm2.Marshal(s.pub), tpm2.Marshal(s.priv)} {
		binary.Write(&body, binary.BigEndian, uint16(len(part)))
		body.Write(part)
	}
	ps := make([]string, len(s.pcrs))
	for i, p := range s.pcrs {
		ps[i] = strconv.Itoa(p)
	}
	return pem.EncodeToMemory(&pem.Block{
		Type:    pemType,
		Headers: map[string]string{"Address": s.addr.String(), "PCRs": "sha256:" + strings.Join(ps, ",")},
		Bytes:   body.Bytes(),
	})
}

// ReadFile reads a sealed file without a TPM and returns the address it
// declares and the PCRs of its policy. It checks the file's form only.
func ReadFile(path string) (signer.Address, []int, error) {
	s, err := readFile(path)
	if err != nil {
		return signer.Address{}, nil, &Error{Path: path, Op: "read", Err: err}
	}
	return s.addr, s.pcrs, nil
}

func readFile(path string) (*sealed, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("is a %s, expected a regular file: %w", st.Mode().Type(), ErrBadFile)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("larger than %d bytes: %w", maxFileSize, ErrBadFile)
	}
	return decode(data)
}

func decode(data []byte) (*sealed, error) {
	block, rest := pem.Decode(data)
	if block == nil || block.Type != pemType {
		return nil, fmt.Errorf("expected a %q PEM block: %w", pemType, ErrBadFile)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("data after the %q block: %w", pemType, ErrBadFile)
	}
	var s sealed
	addr, err := signer.ParseAddress(block.Headers["Address"])
	if err != nil {
		return nil, fmt.Errorf("Address header: %v: %w", err, ErrBadFile)
	}
	s.addr = addr
	bank, list, ok := strings.Cut(block.Headers["PCRs"], ":")
	if !ok || bank != "sha256" {
		return nil, fmt.Errorf("PCRs header %q: expected sha256:N[,N...]: %w", block.Headers["PCRs"], ErrBadFile)
	}
	for _, f := range strings.Split(list, ",") {
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("PCRs header %q: expected sha256:N[,N...]: %w", block.Headers["PCRs"], ErrBadFile)
		}
		s.pcrs = append(s.pcrs, n)
	}
	if err := checkPCRs(s.pcrs); err != nil {
		return nil, fmt.Errorf("PCRs header: %v: %w", err, ErrBadFile)
	}
	body := block.Bytes
	var parts [2][]byte
	for i := range parts {
		if len(body) < 2 {
			return nil, fmt.Errorf("body truncated: %w", ErrBadFile)
		}
		n := int(binary.BigEndian.Uint16(body))
		if len(body) < 2+n {
			return nil, fmt.Errorf("body truncated: %w", ErrBadFile)
		}
		parts[i], body = body[2:2+n], body[2+n:]
	}
	if len(body) != 0 {
		return nil, fmt.Errorf("%d bytes after the sealed object: %w", len(body), ErrBadFile)
	}
	pub, err := tpm2.Unmarshal[tpm2.TPM2BPublic](parts[0])
	if err != nil {
		return nil, fmt.Errorf("public area: %v: %w", err, ErrBadFile)
	}
	priv, err := tpm2.Unmarshal[tpm2.TPM2BPrivate](parts[1])
	if err != nil {
		return nil, fmt.Errorf("private area: %v: %w", err, ErrBadFile)
	}
	s.pub, s.priv = *pub, *priv
	return &s, nil
}

// Load unseals the key of the sealed file at path with the TPM t. The key
// is in locked memory where the OS allows it (MemKey.Locked); Close it at
// stop to zero it. A changed PCR fails with [ErrPCRMismatch], another
// TPM's file with [ErrForeignTPM].
func Load(t transport.TPM, path string) (*signer.MemKey, error) {
	fail := func(err error) (*signer.MemKey, error) {
		return nil, &Error{Path: path, Op: "unseal", Err: err}
	}
	s, err := readFile(path)
	if err != nil {
		return nil, &Error{Path: path, Op: "read", Err: err}
	}
	parent, err := srk(t)
	if err != nil {
		return fail(err)
	}
	defer flush(t, parent.ObjectHandle)
	obj, err := tpm2.Load{
		ParentHandle: tpm2.AuthHandle{Handle: parent.ObjectHandle, Name: parent.Name, Auth: tpm2.PasswordAuth(nil)},
		InPrivate:    s.priv,
		InPublic:     s.pub,
	}.Execute(t)
	if err != nil {
		if errors.Is(err, tpm2.TPMRCIntegrity) || errors.Is(err, tpm2.TPMRCBinding) {
			return fail(fmt.Errorf("%w (%v)", ErrForeignTPM, err))
		}
		return fail(fmt.Errorf("load sealed object: %w", err))
	}
	defer flush(t, obj.ObjectHandle)
	sess, closer, err := policySession(t, s.pcrs, false)
	if err != nil {
		return fail(err)
	}
	defer closer()
	// The response is encrypted on its way from the TPM (a salted session).
	rsp, err := tpm2.Unseal{
		ItemHandle: tpm2.AuthHandle{Handle: obj.ObjectHandle, Name: obj.Name, Auth: sess},
	}.Execute(t, tpm2.HMAC(tpm2.TPMAlgSHA256, 16, tpm2.AESEncryption(128, tpm2.EncryptOut),
		tpm2.Salted(parent.ObjectHandle, *mustPublic(parent))))
	if err != nil {
		if errors.Is(err, tpm2.TPMRCPolicyFail) {
			return fail(fmt.Errorf("%w (PCRs sha256:%v)", ErrPCRMismatch, s.pcrs))
		}
		return fail(fmt.Errorf("unseal: %w", err))
	}
	defer clear(rsp.OutData.Buffer)
	k, err := signer.NewMemKey(rsp.OutData.Buffer)
	if err != nil {
		return fail(err)
	}
	if k.Address() != s.addr {
		k.Close()
		return fail(fmt.Errorf("unsealed key has address %s, the file declares %s: %w", k.Address(), s.addr, ErrBadFile))
	}
	return k, nil
}
