// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/// @title MileageMining: the attestations of README §C1 verified on chain and
/// the Stone draw of README §C6 run from them.
/// @notice The EIP-712 domain of §C1 is EIP712Domain(string name,string
/// version,uint256 chainId) with no verifyingContract, so the separator is
/// computed here (OpenZeppelin's EIP712 base always adds verifyingContract);
/// the digest is OpenZeppelin's MessageHashUtils.toTypedDataHash and the
/// signature is checked with OpenZeppelin's ECDSA (65 bytes, low s, v 27/28).
/// The chainId is the one the devices sign with (configured), not
/// block.chainid.
///
/// Unlike the reference collector the contract judges no eligibility (§C7):
/// every meter of an accepted attestation is a ticket. Its draw equals the
/// collector's for a batch whose attestations are all eligible.
contract MileageMining is Ownable {
    struct ModeMeters {
        string mode;
        uint64 meters;
    }

    struct MileageAttestation {
        address device;
        uint64 seq;
        uint64 batch;
        uint32 batches;
        uint64 meters;
        ModeMeters[] modes;
        bytes32 prev;
        uint32 flags;
    }

    struct Win {
        uint64 ticket;
        address device;
        uint64 seq;
        uint64 micro;
    }

    bytes32 private constant DOMAIN_TYPEHASH = keccak256("EIP712Domain(string name,string version,uint256 chainId)");
    bytes32 private constant MODE_TYPEHASH = keccak256("ModeMeters(string mode,uint64 meters)");
    bytes32 private constant ATTESTATION_TYPEHASH = keccak256(
        "MileageAttestation(address device,uint64 seq,uint64 batch,uint32 batches,uint64 meters,ModeMeters[] modes,bytes32 prev,uint32 flags)ModeMeters(string mode,uint64 meters)"
    );
    bytes32 private constant RECEIPT_TYPEHASH = keccak256("MileageReceipt(address device,uint64 seq,bytes32 digest)");
    bytes32 private constant REFUSAL_TYPEHASH =
        keccak256("MileageRefusal(address device,uint64 seq,bytes32 digest,string reason)");

    // README §C6.
    uint256 public constant GENESIS = 2766336;
    uint256 public constant ERA_BATCHES = 210384;
    uint256 public constant FIRST_ERA_MICRO = 105_000_000 * 1_000_000;
    uint32 public constant KNOWN_FLAGS = 0x3f;
    uint256 public constant MAX_MODES = 64;
    uint256 public constant MAX_MODE_NAME = 128;
    /// A span is credited to each of its batches at submit time (about 47k
    /// gas a batch); a catch-up span of more than a day is refused so that a
    /// submit stays well inside a block.
    uint256 public constant MAX_SPAN_BATCHES = 144;

    bytes32 public immutable DOMAIN_SEPARATOR;
    uint256 public immutable chainId;
    bytes32 public seed;
    uint32 public winners;

    struct Device {
        bool registered;
        uint64 seq; // the head: last accepted seq
        bytes32 head; // digest of the head
    }

    mapping(address => Device) public devices;
    mapping(address => bool) public collectors;
    /// span[device][seq] = batch << 96 | batches << 64 | meters.
    mapping(address => mapping(uint64 => uint256)) private span;
    /// Per batch: the attestations crediting it, as device << 64 | seq.
    mapping(uint64 => uint256[]) private entries;
    mapping(uint64 => bool) public drawn;

    event DeviceSet(address indexed device, bool registered);
    event CollectorSet(address indexed collector, bool registered);
    event Attested(address indexed device, uint64 indexed seq, uint64 batch, uint32 batches, uint64 meters, bytes32 digest);
    event Late(address indexed device, uint64 indexed seq, uint64 batch);
    event Drawn(uint64 indexed batch, uint256 total, uint256 drop);
    event Won(uint64 indexed batch, uint256 i, address indexed device, uint64 seq, uint64 micro);
    /// blockNumber is the block whose hash the seed is (setSeedFromBlock), 0 for a configured value.
    event SeedSet(bytes32 seed, uint256 blockNumber);

    error UnknownDevice(address device);
    error BadSignature(address recovered);
    error SeqMismatch(uint64 expected, uint64 got);
    error PrevMismatch(bytes32 expected, bytes32 got);
    error ZeroBatches();
    error SpanTooLong(uint32 batches);
    error UnknownFlags(uint32 flags);
    error BadModes(uint256 index);
    error ModesSum(uint256 sum, uint64 meters);
    error AlreadyDrawn(uint64 batch);
    error NoTickets(uint64 batch);
    error ZeroWinners();
    error NoBlockHash(uint256 number);

    constructor(uint256 chainId_, bytes32 seed_, uint32 winners_) Ownable(msg.sender) {
        if (winners_ == 0) revert ZeroWinners();
        chainId = chainId_;
        seed = seed_;
        winners = winners_;
        DOMAIN_SEPARATOR =
            keccak256(abi.encode(DOMAIN_TYPEHASH, keccak256("CSOP Mileage"), keccak256("1"), chainId_));
    }

    // ---- administration ----

    function setDevice(address device, bool registered) external onlyOwner {
        devices[device].registered = registered;
        emit DeviceSet(device, registered);
    }

    function setCollector(address collector, bool registered) external onlyOwner {
        collectors[collector] = registered;
        emit CollectorSet(collector, registered);
    }

    /// The draw's public random value as a configured value.
    function setSeed(bytes32 seed_) external onlyOwner {
        seed = seed_;
        emit SeedSet(seed_, 0);
    }

    /// The draw's public random value as a block hash, read by the contract
    /// itself: the hash of block `number`, one of the 256 blocks before this
    /// one (BLOCKHASH's window; older, current or future blocks revert).
    function setSeedFromBlock(uint256 number) external onlyOwner {
        bytes32 h = blockhash(number);
        if (h == bytes32(0)) revert NoBlockHash(number);
        seed = h;
        emit SeedSet(h, number);
    }

    function setWinners(uint32 winners_) external onlyOwner {
        if (winners_ == 0) revert ZeroWinners();
        winners = winners_;
    }

    // ---- README §C1: the attestation ----

    function hashModes(ModeMeters[] calldata modes) internal pure returns (bytes32) {
        bytes32[] memory hs = new bytes32[](modes.length);
        for (uint256 i = 0; i < modes.length; i++) {
            hs[i] = keccak256(abi.encode(MODE_TYPEHASH, keccak256(bytes(modes[i].mode)), modes[i].meters));
        }
        // EIP-712 array: keccak256 of the concatenated hashStructs.
        return keccak256(abi.encodePacked(hs));
    }

    function hashStruct(MileageAttestation calldata a) public pure returns (bytes32) {
        return keccak256(
            abi.encode(
                ATTESTATION_TYPEHASH,
                a.device,
                a.seq,
                a.batch,
                a.batches,
                a.meters,
                hashModes(a.modes),
                a.prev,
                a.flags
            )
        );
    }

    /// The digest the device signs: keccak256(0x19 0x01 ‖ domainSeparator ‖ hashStruct).
    function digest(MileageAttestation calldata a) public view returns (bytes32) {
        return MessageHashUtils.toTypedDataHash(DOMAIN_SEPARATOR, hashStruct(a));
    }

    /// Accepts the next attestation of a registered device: a valid
    /// signature by a.device, seq = head + 1, prev = the head's digest, and
    /// the field rules of README §C1. Its meters become tickets of its
    /// batches (README §C6), except in batches already drawn (late).
    function submit(MileageAttestation calldata a, bytes calldata sig) external {
        Device storage d = devices[a.device];
        if (!d.registered) revert UnknownDevice(a.device);
        if (a.seq != d.seq + 1) revert SeqMismatch(d.seq + 1, a.seq);
        if (a.prev != d.head) revert PrevMismatch(d.head, a.prev);
        if (a.batches == 0) revert ZeroBatches();
        if (a.batches > MAX_SPAN_BATCHES) revert SpanTooLong(a.batches);
        if (a.flags & ~KNOWN_FLAGS != 0) revert UnknownFlags(a.flags);
        checkModes(a.modes, a.meters);
        bytes32 dg = digest(a);
        (address rec, ECDSA.RecoverError err,) = ECDSA.tryRecover(dg, sig);
        if (err != ECDSA.RecoverError.NoError || rec != a.device) revert BadSignature(rec);

        d.seq = a.seq;
        d.head = dg;
        span[a.device][a.seq] = uint256(a.batch) << 96 | uint256(a.batches) << 64 | uint256(a.meters);
        uint256 key = uint256(uint160(a.device)) << 64 | uint256(a.seq);
        uint256 k = a.batches;
        uint256 each = a.meters / k;
        uint256 extra = a.meters % k;
        for (uint256 j = 0; j < k; j++) {
            uint256 t = each + (j < extra ? 1 : 0);
            if (t == 0) break; // the shares only decrease along the span
            uint64 b = a.batch + uint64(j);
            if (drawn[b]) {
                emit Late(a.device, a.seq, b);
                continue;
            }
            entries[b].push(key); // its tickets are recomputed from span[] by the draw
        }
        emit Attested(a.device, a.seq, a.batch, a.batches, a.meters, dg);
    }

    function checkModes(ModeMeters[] calldata modes, uint64 meters) internal pure {
        if (modes.length > MAX_MODES) revert BadModes(MAX_MODES);
        uint256 sum;
        for (uint256 i = 0; i < modes.length; i++) {
            bytes calldata name = bytes(modes[i].mode);
            if (name.length == 0 || name.length > MAX_MODE_NAME || modes[i].meters == 0) revert BadModes(i);
            if (i > 0 && !less(bytes(modes[i - 1].mode), name)) revert BadModes(i);
            sum += modes[i].meters;
        }
        if (sum != meters) revert ModesSum(sum, meters);
    }

    /// Bytewise a < b (Go's string order).
    function less(bytes calldata a, bytes calldata b) internal pure returns (bool) {
        uint256 n = a.length < b.length ? a.length : b.length;
        for (uint256 i = 0; i < n; i++) {
            if (a[i] != b[i]) return a[i] < b[i];
        }
        return a.length < b.length;
    }

    // ---- README §C6: the draw ----

    function drop(uint64 b) public pure returns (uint256) {
        if (b < GENESIS) return 0;
        uint256 era = (b - GENESIS) / ERA_BATCHES;
        if (era >= 40) return 0;
        return FIRST_ERA_MICRO / (ERA_BATCHES << era);
    }

    /// share: the tickets a span gives batch b (floor(M/K), plus one for j < M mod K).
    function share(uint256 packed, uint64 b) internal pure returns (uint256) {
        uint256 batch = packed >> 96;
        uint256 k = (packed >> 64) & type(uint32).max;
        uint256 m = packed & type(uint64).max;
        uint256 j = b - batch;
        return m / k + (j < m % k ? 1 : 0);
    }

    function ticket(uint64 b, uint256 i, uint256 total) public view returns (uint256) {
        return uint256(keccak256(abi.encodePacked(seed, uint256(b), i))) % total;
    }

    /// Draws batch b once: N tickets with replacement over the batch's
    /// tickets laid out by device address, then seq (README §C6). Later
    /// attestations for b are late and earn nothing in it.
    function draw(uint64 b) external returns (uint256 total, Win[] memory wins) {
        if (drawn[b]) revert AlreadyDrawn(b);
        (total, wins) = preview(b);
        drawn[b] = true;
        uint256 dp = drop(b);
        emit Drawn(b, total, dp);
        for (uint256 i = 0; i < wins.length; i++) {
            emit Won(b, i, wins[i].device, wins[i].seq, wins[i].micro);
        }
    }

    /// The draw of batch b as it would run now, without recording it.
    function preview(uint64 b) public view returns (uint256 total, Win[] memory wins) {
        uint256[] memory keys = entries[b];
        if (keys.length == 0) revert NoTickets(b);
        sort(keys);
        uint256[] memory ends = new uint256[](keys.length);
        for (uint256 k = 0; k < keys.length; k++) {
            address dev = address(uint160(keys[k] >> 64));
            total += share(span[dev][uint64(keys[k])], b);
            ends[k] = total;
        }
        uint256 n = winners;
        uint256 dp = drop(b);
        wins = new Win[](n);
        for (uint256 i = 0; i < n; i++) {
            uint256 t = ticket(b, i, total);
            // the first entry whose end is past t
            uint256 lo = 0;
            uint256 hi = keys.length - 1;
            while (lo < hi) {
                uint256 mid = (lo + hi) / 2;
                if (ends[mid] <= t) lo = mid + 1;
                else hi = mid;
            }
            wins[i] = Win({
                ticket: uint64(t),
                device: address(uint160(keys[lo] >> 64)),
                seq: uint64(keys[lo]),
                micro: uint64(dp / n + (i < dp % n ? 1 : 0))
            });
        }
    }

    /// In-place insertion sort; device << 64 | seq orders by device, then seq.
    function sort(uint256[] memory a) internal pure {
        for (uint256 i = 1; i < a.length; i++) {
            uint256 x = a[i];
            uint256 j = i;
            while (j > 0 && a[j - 1] > x) {
                a[j] = a[j - 1];
                j--;
            }
            a[j] = x;
        }
    }

    // ---- README §C2: receipts ----

    /// The signer of a MileageReceipt, or address(0) for a malformed signature.
    function receiptSigner(address device, uint64 seq, bytes32 dg, bytes calldata sig) public view returns (address) {
        bytes32 h = keccak256(abi.encode(RECEIPT_TYPEHASH, device, seq, dg));
        (address rec, ECDSA.RecoverError err,) = ECDSA.tryRecover(MessageHashUtils.toTypedDataHash(DOMAIN_SEPARATOR, h), sig);
        return err == ECDSA.RecoverError.NoError ? rec : address(0);
    }

    /// The signer of a MileageRefusal, or address(0) for a malformed signature.
    function refusalSigner(address device, uint64 seq, bytes32 dg, string calldata reason, bytes calldata sig)
        public
        view
        returns (address)
    {
        bytes32 h = keccak256(abi.encode(REFUSAL_TYPEHASH, device, seq, dg, keccak256(bytes(reason))));
        (address rec, ECDSA.RecoverError err,) = ECDSA.tryRecover(MessageHashUtils.toTypedDataHash(DOMAIN_SEPARATOR, h), sig);
        return err == ECDSA.RecoverError.NoError ? rec : address(0);
    }

    /// Whether a registered collector signed this receipt.
    function verifyReceipt(address device, uint64 seq, bytes32 dg, bytes calldata sig) external view returns (bool) {
        address s = receiptSigner(device, seq, dg, sig);
        return s != address(0) && collectors[s];
    }

    /// Whether a registered collector signed this refusal.
    function verifyRefusal(address device, uint64 seq, bytes32 dg, string calldata reason, bytes calldata sig)
        external
        view
        returns (bool)
    {
        address s = refusalSigner(device, seq, dg, reason, sig);
        return s != address(0) && collectors[s];
    }
}
