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
// The DBC is read by this package's own reader (dbcread.go), which takes
// what the field hands over: every one of opendbc's 119 files, where
// einride's strict parser (go.einride.tech/can/pkg/dbc, whose definition
// types the reader produces) reads 99. A statement ends at its ';' or where
// the next line begins with a DBC keyword, so a missing ';' costs nothing and
// one unreadable statement costs only itself. It reads BO_, SG_ (with the
// multiplexer indicators M, m<n> and m<n>M), CM_, VAL_, SIG_VALTYPE_ and
// SG_MUL_VAL_, and skips the rest (NS_, BA_, VAL_TABLE_, ...). It accepts
// CRLF line ends, names that begin with a digit (2017_5), strings over
// several lines, a Latin-1 file (read as such into UTF-8), and reads two
// non-standard comment forms as message comments: CM_ SG_ <id> "text" (no
// signal name) and CM_ <id> "text". These and other liberal readings are in
// Profile.Warnings as "file:line: what".
//
// A statement it cannot read (a bare "m" indicator, a malformed number) is
// judged by the message it belongs to: inside a message the profile
// receives, it is an ErrSyntax error naming file:line and what was expected;
// elsewhere, a warning, and the rest of the message is kept.
//
// Message IDs: bit 31 marks a 29-bit ID; an ID above 0x7FF without it
// (frequent in hand-written files) is read as a 29-bit ID, with a warning;
// one that fits neither is kept out of the bus (a profile naming it is
// refused). Vector's VECTOR__INDEPENDENT_SIG_MSG is not a message.
//
// Extended multiplexing: a signal with an SG_MUL_VAL_ statement is present
// when the switch it names holds a value in its ranges; a switch that is
// itself multiplexed (nested) is refused for a profile signal.
//
// Load reads at most MaxProfileSize (1 MiB) of profile and MaxDBCSize
// (16 MiB) of DBC, regular files only (ErrTooLarge, ErrNotRegular): a
// profile naming dbc = "/dev/zero" is refused before any byte is read.
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
// Only the messages of the profile's signals are ever received (Filter). The
// gate is on bus IDs, not names: a profile is refused with ErrBiometric when
// the ID of a referenced message is the ID of any DBC message that
//   - is listed under [privacy] biometric_messages (by DBC name or hex ID), or
//   - has a name or comment, or carries any signal whose name or comment,
//     matches the deny-list below. The whole message is judged, not only the
//     referenced signal: every byte of a received frame reaches user space.
//
// So a harmless-looking second message on the ID of DMS_Face (an alias) is
// refused with an error naming both messages, whatever the profile calls it
// and however the DBC spells the ID (with or without the 29-bit flag).
//
// Names and comments are first folded to ASCII (Unicode NFKD, combining
// marks and invisible characters dropped, Cyrillic and Greek look-alike
// letters mapped: "Fасе" with Cyrillic а, с, е is "Face"), then split into
// words (at punctuation, camelCase and digit boundaries) and compared
// case-insensitively. The deny-list, as word prefixes unless marked "exact":
//
//	face, facial, finger (fingerprint), voice (voiceprint), iris, retina,
//	palm (exact), vein (exact), heart (heartrate), pulse, gaze, drows
//	(drowsy, drowsiness), biometr (biometric), breath, alcohol, pupil,
//	eyelid, eye/eyes (exact), blood, sweat, emotion, cardio,
//	electrocardio, microphone, ECG/EKG/EEG/HRV/SpO2/BPM (exact),
//	DMS/OMS (exact), yawn, respirat(ion), microsleep, sleepin(ess), sleepy,
//	electroderm(al), electromyo, electroenceph, breathalys/breathalyz,
//	EMG/BAC/GSR/skin (exact), and the phrases "driver monitor...",
//	"occupant monitor...", "driver attention", "driver camera", "cabin
//	camera", "driver fatigue", "skin conduct...", "galvanic skin".
//
// HR, BPM and sleep are judged beside a person: they match only within two
// words of driver, drv, drvr, occupant, occ, passenger, psngr, pass, person or
// rider ("DriverHR", "HR_Occupant", "DriverSleepState"), since alone they are
// high resolution, a body power module and an ECU's network-management
// sleep.
//
// Known innocent uses are exempt: "heartbeat" and "heartbit" (an ECU
// keep-alive); a pulse beside a machine part (wheel, brake, battery,
// regeneration, distance accumulator, encoder, PWM, ...) or followed by
// "count", "cnt" or "width"; alcohol beside fuel, ethanol or flex (the
// ethanol share of flex fuel); ECG beside to, GWM, FD, smart or DTE (Ford's
// Enhanced Central Gateway); voice beside PTT, button or blower (a switch's
// state). A signal comment is judged with the signal's and the message's
// names as context for these exemptions. What the gate refuses across the
// opendbc corpus, and why, is in testdata/opendbc_privacy.golden.
//
// # Decoding
//
// Not a reading (README §C1): an odometer or speed raw value that the signal's
// value table names (SNA, Invalid, Init, Error, ...), and a frame that cannot
// be decoded (shorter than the signal or its multiplexer switch, a NaN or
// infinite float), give no reading; Decoder.NotReadings counts them per kind
// (atomically, for the diagnostic shell). A value table that names the
// physical value of the all-ones raw pattern (Tesla's VAL_ 4294967 "SNA" on
// a 32-bit 0.001 km odometer) marks the all-ones raw.
//
// Decoder.Decode is the hot path: it allocates nothing per frame and appends
// the readings of a frame to a caller-provided slice. Drive-mode names come
// from the DBC value table (VAL_), or "MODE_<n>" for a value without a name,
// and are precomputed or interned per decoder.
package profile
