// Package profile loads a vehicle profile and its DBC and decodes the odometer, drive-mode and speed signals from CAN frames.
//
// # Profile
//
// A profile is the TOML file of README §C3. It names a DBC file (relative to
// the profile) and, for each of odometer, drive_mode and (optionally) speed,
// the DBC message and signal that carry it, an optional unit override and an
// optional bus. Unknown keys are refused with their name and line, so a typo
// never silently disables a section.
//
// The DBC is parsed with go.einride.tech/can/pkg/dbc. The referenced signals
// are compiled into decoders supporting Intel and Motorola byte order (DBC
// sawtooth bit numbering), signed and unsigned integers, IEEE float32 and
// float64 (SIG_VALTYPE_ 1 and 2), factor and offset, multiplexed messages (a
// signal with multiplexer value m decodes only when the message's multiplexer
// switch equals m), 11- and 29-bit identifiers, and CAN FD payloads up to 64
// bytes.
//
// Some DBCs in the wild contain comment statements that the einride parser
// refuses, such as a signal comment without a signal name
// (`CM_ SG_ 304 "text";` in commaai/opendbc's Honda files). Comments carry no
// decoding information, so Load blanks such a CM_ statement (keeping the line
// numbering), parses again and records a warning (Profile.Warnings). The text
// of a blanked comment still goes through the privacy gate below.
//
// # Units
//
// Readings are normalised: the odometer to meters, the speed to km/h. The unit
// comes from the DBC signal (compared case-insensitively, with a leading
// "Unit_" and spaces or underscores ignored, so "KM", "Km", "km", "kilometers"
// and Vector's "Unit_KiloMeter" are all kilometers) or from the profile's
// unit = "..." override. Known distance units: m, km, mi (and their spelled-out
// forms), hm, dm, cm. Known speed units: km/h, kph, kmh, m/s, mph (and their
// spelled-out forms). A signal without a known unit and without an override is
// a configuration error that names the signal and the unit found.
//
// The factor and offset are combined with the unit scale once, at load, and
// rounded to 15 significant digits, so that a 0.1 km odometer step is exactly
// 100 m and a raw value decodes to the same meters on every platform.
//
// # Privacy gate
//
// Only the messages of the profile's signals are ever received (Filter). A
// profile is refused with ErrBiometric when a referenced message
//   - is listed under [privacy] biometric_messages (by DBC name or hex ID), or
//   - has a name or comment, or carries any signal whose name or comment,
//     matches the deny-list below. The whole message is judged, not only the
//     referenced signal: every byte of a received frame reaches user space.
//
// Names and comments are split into words (at punctuation, camelCase and
// digit boundaries) and compared case-insensitively. The deny-list, as word
// prefixes unless marked "exact":
//
//	face, facial, finger (fingerprint), voice (voiceprint), iris, retina,
//	palm (exact), vein (exact), heart (heartrate), pulse, gaze, drows
//	(drowsy, drowsiness), biometr (biometric), breath, alcohol, pupil,
//	eyelid, eye/eyes (exact), blood, sweat, emotion, cardio,
//	electrocardio, microphone, ECG/EKG/EEG/HRV/SpO2/BPM (exact),
//	DMS/OMS (exact), and the phrases "driver monitor...", "occupant
//	monitor...", "driver attention", "driver camera", "cabin camera",
//	"driver fatigue".
//
// Known innocent uses are exempt: "heartbeat" (an ECU keep-alive) and a pulse
// next to "wheel"/"whl" or followed by "count", "cnt" or "width" (wheel-speed
// encoders, PWM).
//
// # Decoding
//
// Decoder.Decode is the hot path: it allocates nothing per frame and appends
// the readings of a frame to a caller-provided slice. Drive-mode names come
// from the DBC value table (VAL_), or "MODE_<n>" for a value without a name,
// and are precomputed or interned per decoder.
package profile
