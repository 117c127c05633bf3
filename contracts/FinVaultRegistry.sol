// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Ownable, Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

/// @title FinVault certificate registry
/// @notice Source of truth for FinVault: issuers, their document-signing keys, anchored Merkle
///         roots of certificate batches, and revocations. Off-chain mirrors rebuild their state
///         from the events alone; the views serve direct verification and audits.
/// @dev Leaves follow OpenZeppelin StandardMerkleTree for leaf encoding ["bytes32"]:
///      leaf = keccak256(bytes.concat(keccak256(abi.encode(digest)))).
///      Leaf revocations are keyed by (root, leaf), so anchoring a copy of another issuer's leaf
///      never lets one issuer revoke another's certificate.
contract FinVaultRegistry is Ownable2Step {
    using SafeCast for uint256;

    // ---------------------------------------------------------------- constants

    /// @notice Algorithm code for Ed25519 document-signing keys (DER SubjectPublicKeyInfo, 44 bytes).
    uint8 public constant ALG_ED25519 = 1;
    /// @notice Algorithm code for RSA PKCS#1 v1.5 / SHA-256 keys of at least 2048 bits.
    uint8 public constant ALG_RSA_PKCS1V15_SHA256 = 2;

    uint256 private constant ED25519_SPKI_LENGTH = 44;
    /// @dev DER SubjectPublicKeyInfo of a 2048-bit RSA key with exponent 65537 is 294 bytes;
    ///      anything shorter is a weaker key. 2 KiB bounds the event size.
    uint256 private constant RSA2048_SPKI_MIN_LENGTH = 294;
    uint256 private constant PUBLIC_KEY_MAX_LENGTH = 2048;

    /// @notice Largest batch one anchor may declare (the count is packed into 24 bits).
    uint256 public constant MAX_BATCH_COUNT = type(uint24).max;

    /// @notice Revocation reasons: RFC 5280 CRLReason codes 0 unspecified, 1 keyCompromise,
    ///         3 affiliationChanged, 4 superseded, 5 cessationOfOperation, 9 privilegeWithdrawn,
    ///         plus 11 issuedInError (the first code RFC 5280 leaves unassigned after 10).
    uint8 public constant REASON_ISSUED_IN_ERROR = 11;
    uint256 private constant VALID_REASONS =
        (1 << 0) | (1 << 1) | (1 << 3) | (1 << 4) | (1 << 5) | (1 << 9) | (1 << 11);

    // ------------------------------------------------------------------ storage

    struct Issuer {
        bool registered;
        bool active;
        uint32 registeredBlock;
        string name;
        string uri;
    }

    struct Key {
        address issuer;
        uint8 algorithm;
        uint32 addedBlock;
        uint32 revokedBlock; // 0 while the key is live
    }

    /// @dev One storage slot per anchor keeps `anchor` well under 80k gas.
    struct Anchor {
        address issuer;
        uint40 timestamp;
        uint32 blockNumber;
        uint24 count;
    }

    struct Revocation {
        uint32 blockNumber; // 0 means "not revoked"
        uint40 timestamp;
        uint8 reason;
    }

    mapping(address issuer => Issuer) private _issuers;
    mapping(bytes32 keyId => Key) private _keys;
    mapping(bytes32 root => Anchor) private _anchors;
    mapping(bytes32 revocationId => Revocation) private _revocations;

    /// @notice Running hash over every anchor: keccak256(abi.encode(prev, root, issuer, count, block.number)),
    ///         starting from keccak256(abi.encode(chainid, registry, 1)).
    bytes32 public accumulator;
    /// @notice Running hash over every revocation:
    ///         keccak256(abi.encode(prev, root, leaf, issuer, reason, block.number)), leaf = 0 for a root,
    ///         starting from keccak256(abi.encode(chainid, registry, 2)).
    bytes32 public revocationAccumulator;
    // These three share one slot; deploymentBlock keeps it non-zero so counting stays cheap.
    uint64 public anchorCount;
    uint64 public revocationCount;
    /// @notice Where mirrors start following events.
    uint64 public deploymentBlock;

    // ------------------------------------------------------------------- events

    event IssuerRegistered(address indexed issuer, string name, string uri);
    event IssuerStatusChanged(address indexed issuer, bool active);
    event KeyAdded(address indexed issuer, bytes32 indexed keyId, uint8 algorithm, bytes publicKey);
    event KeyRevoked(address indexed issuer, bytes32 indexed keyId);
    event Anchored(
        bytes32 indexed root,
        address indexed issuer,
        uint256 count,
        uint256 timestamp,
        bytes32 accumulator,
        string manifestUri
    );
    event RootRevoked(
        bytes32 indexed root, address indexed issuer, uint8 reason, uint256 timestamp, bytes32 accumulator
    );
    event LeafRevoked(
        bytes32 indexed leaf,
        bytes32 indexed root,
        address indexed issuer,
        uint8 reason,
        uint256 timestamp,
        bytes32 accumulator
    );

    // ------------------------------------------------------------------- errors

    error ZeroAddress();
    error IssuerAlreadyRegistered(address issuer);
    error IssuerNotRegistered(address issuer);
    error IssuerInactive(address issuer);
    error UnsupportedAlgorithm(uint8 algorithm);
    error InvalidPublicKeyLength(uint8 algorithm, uint256 length);
    error KeyIdMismatch(bytes32 keyId, bytes32 computed);
    error KeyAlreadyExists(bytes32 keyId);
    error KeyNotFound(bytes32 keyId);
    error NotKeyOwner(bytes32 keyId, address caller);
    error KeyAlreadyRevoked(bytes32 keyId);
    error ZeroRoot();
    error ZeroCount();
    error BatchTooLarge(uint256 count, uint256 max);
    error RootAlreadyAnchored(bytes32 root);
    error RootNotAnchored(bytes32 root);
    error NotRootIssuer(bytes32 root, address caller);
    error InvalidProof(bytes32 root);
    error NoLeaves();
    error InvalidReason(uint8 reason);
    error AlreadyRevoked(bytes32 revocationId);

    /// @dev Non-zero genesis values bind both accumulators to this chain and this registry, and keep
    ///      the first anchor and revocation at the same storage price as every later one.
    constructor(address initialOwner) Ownable(initialOwner) {
        accumulator = keccak256(abi.encode(block.chainid, address(this), uint256(1)));
        revocationAccumulator = keccak256(abi.encode(block.chainid, address(this), uint256(2)));
        deploymentBlock = block.number.toUint64();
    }

    // ------------------------------------------------------------------ issuers

    /// @notice Registers an issuer and makes it active. Owner only.
    function registerIssuer(address issuer, string calldata name, string calldata uri) external onlyOwner {
        if (issuer == address(0)) revert ZeroAddress();
        Issuer storage record = _issuers[issuer];
        if (record.registered) revert IssuerAlreadyRegistered(issuer);
        record.registered = true;
        record.active = true;
        record.registeredBlock = block.number.toUint32();
        record.name = name;
        record.uri = uri;
        emit IssuerRegistered(issuer, name, uri);
    }

    /// @notice Activates or suspends an issuer. A suspended issuer cannot anchor or add keys, but
    ///         can still revoke what it issued. Owner only.
    function setIssuerActive(address issuer, bool active) external onlyOwner {
        Issuer storage record = _issuers[issuer];
        if (!record.registered) revert IssuerNotRegistered(issuer);
        record.active = active;
        emit IssuerStatusChanged(issuer, active);
    }

    // --------------------------------------------------------------------- keys

    /// @notice Registers a document-signing key for the calling issuer.
    /// @param keyId keccak256 of `publicKey`; checked here so every mirror can trust it.
    /// @param publicKey DER SubjectPublicKeyInfo. Only `keyId`'s metadata is stored; the full
    ///        key lives in the KeyAdded event.
    function addKey(bytes32 keyId, uint8 algorithm, bytes calldata publicKey) external {
        _requireActiveIssuer(msg.sender);
        uint256 length = publicKey.length;
        if (algorithm == ALG_ED25519) {
            if (length != ED25519_SPKI_LENGTH) revert InvalidPublicKeyLength(algorithm, length);
        } else if (algorithm == ALG_RSA_PKCS1V15_SHA256) {
            if (length < RSA2048_SPKI_MIN_LENGTH || length > PUBLIC_KEY_MAX_LENGTH) {
                revert InvalidPublicKeyLength(algorithm, length);
            }
        } else {
            revert UnsupportedAlgorithm(algorithm);
        }
        bytes32 computed = keccak256(publicKey);
        if (computed != keyId) revert KeyIdMismatch(keyId, computed);
        Key storage key = _keys[keyId];
        if (key.issuer != address(0)) revert KeyAlreadyExists(keyId);
        key.issuer = msg.sender;
        key.algorithm = algorithm;
        key.addedBlock = block.number.toUint32();
        emit KeyAdded(msg.sender, keyId, algorithm, publicKey);
    }

    /// @notice Revokes one of the caller's keys from this block on. Allowed for suspended issuers.
    function revokeKey(bytes32 keyId) external {
        Key storage key = _keys[keyId];
        if (key.issuer == address(0)) revert KeyNotFound(keyId);
        if (key.issuer != msg.sender) revert NotKeyOwner(keyId, msg.sender);
        if (key.revokedBlock != 0) revert KeyAlreadyRevoked(keyId);
        key.revokedBlock = block.number.toUint32();
        emit KeyRevoked(msg.sender, keyId);
    }

    // ------------------------------------------------------------------ anchors

    /// @notice Anchors the Merkle root of a batch of `count` certificates. Active issuers only.
    /// @param manifestUri Optional location of the batch's public leaf list (hashes only).
    function anchor(bytes32 root, uint256 count, string calldata manifestUri) external {
        _requireActiveIssuer(msg.sender);
        if (root == bytes32(0)) revert ZeroRoot();
        if (count == 0) revert ZeroCount();
        if (count > MAX_BATCH_COUNT) revert BatchTooLarge(count, MAX_BATCH_COUNT);
        Anchor storage slot = _anchors[root];
        if (slot.issuer != address(0)) revert RootAlreadyAnchored(root);

        _anchors[root] = Anchor({
            issuer: msg.sender,
            timestamp: block.timestamp.toUint40(),
            blockNumber: block.number.toUint32(),
            count: uint24(count)
        });
        bytes32 acc = keccak256(abi.encode(accumulator, root, msg.sender, count, block.number));
        accumulator = acc;
        unchecked {
            ++anchorCount;
        }
        emit Anchored(root, msg.sender, count, block.timestamp, acc, manifestUri);
    }

    // -------------------------------------------------------------- revocations

    /// @notice Revokes a whole batch. Only the issuer that anchored `root`.
    function revokeRoot(bytes32 root, uint8 reason) external {
        _requireRootIssuer(root);
        _requireValidReason(reason);
        bytes32 acc = _recordRevocation(root, root, bytes32(0), reason);
        emit RootRevoked(root, msg.sender, reason, block.timestamp, acc);
    }

    /// @notice Revokes one certificate. The proof must show `leaf` is in the caller's `root`.
    function revokeLeaf(bytes32 leaf, bytes32 root, bytes32[] calldata proof, uint8 reason) external {
        _requireRootIssuer(root);
        _requireValidReason(reason);
        if (!MerkleProof.verifyCalldata(proof, root, leaf)) revert InvalidProof(root);
        bytes32 acc = _recordRevocation(leafRevocationId(root, leaf), root, leaf, reason);
        emit LeafRevoked(leaf, root, msg.sender, reason, block.timestamp, acc);
    }

    /// @notice Revokes several certificates of one batch with an OpenZeppelin multiproof.
    /// @dev `leaves` must be in the order StandardMerkleTree.getMultiProof returns them.
    function revokeLeaves(
        bytes32[] calldata leaves,
        bytes32 root,
        bytes32[] calldata proof,
        bool[] calldata proofFlags,
        uint8 reason
    ) external {
        if (leaves.length == 0) revert NoLeaves();
        _requireRootIssuer(root);
        _requireValidReason(reason);
        _requireWellFormedMultiproof(root, leaves.length, proof.length, proofFlags);
        if (!MerkleProof.multiProofVerifyCalldata(proof, proofFlags, root, leaves)) revert InvalidProof(root);
        for (uint256 i = 0; i < leaves.length; ++i) {
            bytes32 leaf = leaves[i];
            bytes32 acc = _recordRevocation(leafRevocationId(root, leaf), root, leaf, reason);
            emit LeafRevoked(leaf, root, msg.sender, reason, block.timestamp, acc);
        }
    }

    // -------------------------------------------------------------------- views

    /// @notice The revocation id of a leaf within a root: keccak256(abi.encode(root, leaf)).
    function leafRevocationId(bytes32 root, bytes32 leaf) public pure returns (bytes32) {
        return keccak256(abi.encode(root, leaf));
    }

    function anchorOf(bytes32 root)
        external
        view
        returns (address issuer, uint256 blockNumber, uint256 timestamp, uint256 count)
    {
        Anchor memory a = _anchors[root];
        return (a.issuer, a.blockNumber, a.timestamp, a.count);
    }

    /// @param revocationId a root, or `leafRevocationId(root, leaf)`.
    function revocationOf(bytes32 revocationId)
        external
        view
        returns (bool revoked, uint8 reason, uint256 blockNumber, uint256 timestamp)
    {
        Revocation memory r = _revocations[revocationId];
        return (r.blockNumber != 0, r.reason, r.blockNumber, r.timestamp);
    }

    function issuerOf(address issuer)
        external
        view
        returns (bool registered, bool active, uint256 registeredBlock, string memory name, string memory uri)
    {
        Issuer storage record = _issuers[issuer];
        return (record.registered, record.active, record.registeredBlock, record.name, record.uri);
    }

    function keyOf(bytes32 keyId)
        external
        view
        returns (address issuer, uint8 algorithm, uint256 addedBlock, uint256 revokedBlock)
    {
        Key memory key = _keys[keyId];
        return (key.issuer, key.algorithm, key.addedBlock, key.revokedBlock);
    }

    /// @notice True when `root` is anchored by a currently active issuer, neither the root nor
    ///         (root, leaf) is revoked, and `proof` leads from `leaf` to `root`.
    function isValid(bytes32 leaf, bytes32 root, bytes32[] calldata proof) external view returns (bool) {
        address issuer = _anchors[root].issuer;
        if (issuer == address(0) || !_issuers[issuer].active) return false;
        if (_revocations[root].blockNumber != 0) return false;
        if (_revocations[leafRevocationId(root, leaf)].blockNumber != 0) return false;
        return MerkleProof.verifyCalldata(proof, root, leaf);
    }

    // ----------------------------------------------------------------- internal

    function _requireActiveIssuer(address issuer) private view {
        Issuer storage record = _issuers[issuer];
        if (!record.registered) revert IssuerNotRegistered(issuer);
        if (!record.active) revert IssuerInactive(issuer);
    }

    function _requireRootIssuer(bytes32 root) private view {
        address issuer = _anchors[root].issuer;
        if (issuer == address(0)) revert RootNotAnchored(root);
        if (issuer != msg.sender) revert NotRootIssuer(root, msg.sender);
    }

    /// @dev OpenZeppelin reverts on a malformed multiproof with its own error, or even an
    ///      out-of-bounds panic; check the shape first so every bad proof reads InvalidProof.
    ///      With as many `false` flags as proof nodes, the verifier never reads past either array.
    function _requireWellFormedMultiproof(
        bytes32 root,
        uint256 leafCount,
        uint256 proofLength,
        bool[] calldata proofFlags
    ) private pure {
        if (leafCount + proofLength != proofFlags.length + 1) revert InvalidProof(root);
        uint256 fromProof = 0;
        for (uint256 i = 0; i < proofFlags.length; ++i) {
            if (!proofFlags[i]) ++fromProof;
        }
        if (fromProof != proofLength) revert InvalidProof(root);
    }

    function _requireValidReason(uint8 reason) private pure {
        if ((VALID_REASONS >> reason) & 1 == 0) revert InvalidReason(reason);
    }

    function _recordRevocation(bytes32 revocationId, bytes32 root, bytes32 leaf, uint8 reason)
        private
        returns (bytes32 acc)
    {
        Revocation storage r = _revocations[revocationId];
        if (r.blockNumber != 0) revert AlreadyRevoked(revocationId);
        r.blockNumber = block.number.toUint32();
        r.timestamp = block.timestamp.toUint40();
        r.reason = reason;
        acc = keccak256(abi.encode(revocationAccumulator, root, leaf, msg.sender, reason, block.number));
        revocationAccumulator = acc;
        unchecked {
            ++revocationCount;
        }
    }
}
