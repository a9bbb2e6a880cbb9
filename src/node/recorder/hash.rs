//! The trace hash: FNV-1a over a compact binary form of each record entry, fed straight
//! from serde into the hasher (no JSON, no allocation per entry).
//!
//! Owns: [`Fnv64`] and its serde [`Serializer`]. The binary form is prefix-free, so two
//! different values of one type never write the same bytes:
//!
//! - every value starts with a one-byte tag saying what it is (`bool`, unsigned, signed,
//!   float, char, string, bytes, none/some, unit, a variant, a sequence, a tuple, a map, a
//!   struct, a skipped field);
//! - integers are LEB128 varints (signed ones zigzagged first); floats their IEEE bits;
//!   strings and bytes a varint length then the bytes;
//! - sequences, tuples, maps, structs and variants open with their tag and close with an
//!   end tag, so their length need not be known first (`serialize_map(None)` of a
//!   `#[serde(flatten)]`) and two neighbours cannot trade elements;
//! - a variant writes its name (what `events.jsonl` shows, e.g. `send-return`), not its
//!   index; newtype structs are transparent (`Offset(5)` is `5`), as in JSON;
//! - **struct field names are not hashed** (a struct's fields are fixed by its type and
//!   written in declaration order); a field left out by `skip_serializing_if` writes a
//!   skip tag in its place. **Map keys are hashed** (they are data; a flattened struct
//!   serializes as a map, so its field names are hashed as keys);
//! - the serializer says it is human readable, so every type takes the same shape it takes
//!   in JSON (a partition as `topic/partition` text where the JSON has it);
//! - maps are hashed in their iteration order: record types hold `BTreeMap`s, never a
//!   `HashMap` (whose order differs between processes).
//!
//! FNV-1a and the form depend on nothing but the values: the same binary, scenario and
//! seed give the same hash in any process, on any platform.

use serde::ser::{self, Serialize};
use std::fmt::{self, Write as _};

/// FNV-1a, 64-bit: tiny, stable across platforms and Rust releases.
#[derive(Clone, Copy, Debug)]
pub struct Fnv64(pub u64);

impl Default for Fnv64 {
    fn default() -> Self {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }
}

const BOOL: u8 = 1;
const UNSIGNED: u8 = 2;
const SIGNED: u8 = 3;
const U128: u8 = 4;
const I128: u8 = 5;
const F32: u8 = 6;
const F64: u8 = 7;
const CHAR: u8 = 8;
const STR: u8 = 9;
const BYTES: u8 = 10;
const NONE: u8 = 11;
const SOME: u8 = 12;
const UNIT: u8 = 13;
const UNIT_VARIANT: u8 = 14;
const NEWTYPE_VARIANT: u8 = 15;
const TUPLE_VARIANT: u8 = 16;
const STRUCT_VARIANT: u8 = 17;
const SEQ: u8 = 18;
const TUPLE: u8 = 19;
const MAP: u8 = 20;
const STRUCT: u8 = 21;
const SKIPPED: u8 = 22;
const END: u8 = 23;

impl Fnv64 {
    /// Feeds `bytes`.
    pub fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.byte(b);
        }
    }

    fn byte(&mut self, b: u8) {
        self.0 ^= u64::from(b);
        self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
    }

    /// Feeds `value` as a LEB128 varint.
    pub fn varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.byte((value as u8) | 0x80);
            value >>= 7;
        }
        self.byte(value as u8);
    }

    /// Feeds a string (tagged, length-prefixed), as the serializer does.
    pub fn str(&mut self, text: &str) {
        self.byte(STR);
        self.varint(text.len() as u64);
        self.write(text.as_bytes());
    }

    /// Feeds an unsigned integer (tagged), as the serializer does.
    pub fn unsigned(&mut self, value: u64) {
        self.byte(UNSIGNED);
        self.varint(value);
    }

    /// Feeds any serializable value in the binary form.
    pub fn value<T: Serialize + ?Sized>(&mut self, value: &T) {
        value
            .serialize(&mut *self)
            .expect("the trace hash's serializer never fails on record types");
    }
}

/// What the hash serializer can fail with: only a type's own `Serialize` error.
#[derive(Debug)]
pub struct HashError(String);

impl fmt::Display for HashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HashError {}

impl ser::Error for HashError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        HashError(msg.to_string())
    }
}

/// `collect_str` without a heap allocation for short text: up to 128 bytes on the stack.
struct StackText {
    buf: [u8; 128],
    len: usize,
    spilled: Option<String>,
}

impl fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if let Some(spilled) = &mut self.spilled {
            spilled.push_str(s);
        } else if self.len + s.len() <= self.buf.len() {
            self.buf[self.len..self.len + s.len()].copy_from_slice(s.as_bytes());
            self.len += s.len();
        } else {
            let mut spilled = String::with_capacity(self.len + s.len());
            // Only whole `&str`s were copied in: the prefix is UTF-8.
            spilled.push_str(std::str::from_utf8(&self.buf[..self.len]).map_err(|_| fmt::Error)?);
            spilled.push_str(s);
            self.spilled = Some(spilled);
        }
        Ok(())
    }
}

impl ser::Serializer for &mut Fnv64 {
    type Ok = ();
    type Error = HashError;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fn serialize_bool(self, v: bool) -> Result<(), HashError> {
        self.byte(BOOL);
        self.byte(u8::from(v));
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<(), HashError> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i16(self, v: i16) -> Result<(), HashError> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i32(self, v: i32) -> Result<(), HashError> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i64(self, v: i64) -> Result<(), HashError> {
        self.byte(SIGNED);
        self.varint(((v << 1) ^ (v >> 63)) as u64);
        Ok(())
    }
    fn serialize_i128(self, v: i128) -> Result<(), HashError> {
        self.byte(I128);
        self.write(&v.to_le_bytes());
        Ok(())
    }
    fn serialize_u8(self, v: u8) -> Result<(), HashError> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u16(self, v: u16) -> Result<(), HashError> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u32(self, v: u32) -> Result<(), HashError> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u64(self, v: u64) -> Result<(), HashError> {
        self.unsigned(v);
        Ok(())
    }
    fn serialize_u128(self, v: u128) -> Result<(), HashError> {
        self.byte(U128);
        self.write(&v.to_le_bytes());
        Ok(())
    }
    fn serialize_f32(self, v: f32) -> Result<(), HashError> {
        self.byte(F32);
        self.write(&v.to_bits().to_le_bytes());
        Ok(())
    }
    fn serialize_f64(self, v: f64) -> Result<(), HashError> {
        self.byte(F64);
        self.write(&v.to_bits().to_le_bytes());
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<(), HashError> {
        self.byte(CHAR);
        self.varint(u64::from(u32::from(v)));
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), HashError> {
        self.str(v);
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), HashError> {
        self.byte(BYTES);
        self.varint(v.len() as u64);
        self.write(v);
        Ok(())
    }
    fn serialize_none(self) -> Result<(), HashError> {
        self.byte(NONE);
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), HashError> {
        self.byte(SOME);
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), HashError> {
        self.byte(UNIT);
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), HashError> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), HashError> {
        self.byte(UNIT_VARIANT);
        self.str(variant);
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), HashError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), HashError> {
        self.byte(NEWTYPE_VARIANT);
        self.str(variant);
        value.serialize(self)
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self, HashError> {
        self.byte(SEQ);
        Ok(self)
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self, HashError> {
        self.byte(TUPLE);
        Ok(self)
    }
    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> Result<Self, HashError> {
        self.byte(TUPLE);
        Ok(self)
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Self, HashError> {
        self.byte(TUPLE_VARIANT);
        self.str(variant);
        Ok(self)
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self, HashError> {
        self.byte(MAP);
        Ok(self)
    }
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self, HashError> {
        self.byte(STRUCT);
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Self, HashError> {
        self.byte(STRUCT_VARIANT);
        self.str(variant);
        Ok(self)
    }
    fn collect_str<T: fmt::Display + ?Sized>(self, value: &T) -> Result<(), HashError> {
        let mut text = StackText {
            buf: [0; 128],
            len: 0,
            spilled: None,
        };
        write!(text, "{value}").map_err(|_| ser::Error::custom("Display failed"))?;
        match &text.spilled {
            Some(spilled) => self.str(spilled),
            None => self.str(std::str::from_utf8(&text.buf[..text.len]).expect("whole strs")),
        }
        Ok(())
    }
    fn is_human_readable(&self) -> bool {
        true
    }
}

impl ser::SerializeSeq for &mut Fnv64 {
    type Ok = ();
    type Error = HashError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), HashError> {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), HashError> {
        self.byte(END);
        Ok(())
    }
}

impl ser::SerializeTuple for &mut Fnv64 {
    type Ok = ();
    type Error = HashError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), HashError> {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), HashError> {
        self.byte(END);
        Ok(())
    }
}

impl ser::SerializeTupleStruct for &mut Fnv64 {
    type Ok = ();
    type Error = HashError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), HashError> {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), HashError> {
        self.byte(END);
        Ok(())
    }
}

impl ser::SerializeTupleVariant for &mut Fnv64 {
    type Ok = ();
    type Error = HashError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), HashError> {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), HashError> {
        self.byte(END);
        Ok(())
    }
}

impl ser::SerializeMap for &mut Fnv64 {
    type Ok = ();
    type Error = HashError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), HashError> {
        key.serialize(&mut **self)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), HashError> {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), HashError> {
        self.byte(END);
        Ok(())
    }
}

impl ser::SerializeStruct for &mut Fnv64 {
    type Ok = ();
    type Error = HashError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        _key: &'static str,
        value: &T,
    ) -> Result<(), HashError> {
        value.serialize(&mut **self)
    }
    fn skip_field(&mut self, _key: &'static str) -> Result<(), HashError> {
        self.byte(SKIPPED);
        Ok(())
    }
    fn end(self) -> Result<(), HashError> {
        self.byte(END);
        Ok(())
    }
}

impl ser::SerializeStructVariant for &mut Fnv64 {
    type Ok = ();
    type Error = HashError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        _key: &'static str,
        value: &T,
    ) -> Result<(), HashError> {
        value.serialize(&mut **self)
    }
    fn skip_field(&mut self, _key: &'static str) -> Result<(), HashError> {
        self.byte(SKIPPED);
        Ok(())
    }
    fn end(self) -> Result<(), HashError> {
        self.byte(END);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;
    use std::collections::BTreeMap;

    fn hash<T: Serialize + ?Sized>(value: &T) -> u64 {
        let mut fnv = Fnv64::default();
        fnv.value(value);
        fnv.0
    }

    #[derive(Serialize)]
    struct Pair {
        a: Option<String>,
        b: Option<String>,
    }

    #[derive(Serialize)]
    struct Skipping {
        #[serde(skip_serializing_if = "Option::is_none")]
        a: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        b: Option<u64>,
    }

    #[derive(Serialize)]
    struct Inner {
        x: u64,
    }

    #[derive(Serialize)]
    struct Flat {
        at: u64,
        #[serde(flatten)]
        inner: Inner,
    }

    #[derive(Serialize)]
    #[serde(tag = "op")]
    enum Tagged {
        One { v: u64 },
        Two { v: u64 },
    }

    #[derive(Serialize)]
    #[serde(untagged)]
    enum Untagged {
        Num(u64),
        Text(String),
    }

    #[test]
    fn neighbours_cannot_trade_bytes() {
        // Length prefixes: ("ab", "c") vs ("a", "bc").
        assert_ne!(hash(&("ab", "c")), hash(&("a", "bc")));
        // Brackets: [[1], [2, 3]] vs [[1, 2], [3]].
        assert_ne!(
            hash(&vec![vec![1u64], vec![2, 3]]),
            hash(&vec![vec![1u64, 2], vec![3]])
        );
        // Tags: None then Some vs Some then None; a string vs a number.
        let one = Pair {
            a: None,
            b: Some("x".into()),
        };
        let two = Pair {
            a: Some("x".into()),
            b: None,
        };
        assert_ne!(hash(&one), hash(&two));
        assert_ne!(hash(&Untagged::Num(1)), hash(&Untagged::Text("1".into())));
        // Skipped fields keep their place: {a: 1} vs {b: 1}.
        assert_ne!(
            hash(&Skipping {
                a: Some(1),
                b: None
            }),
            hash(&Skipping {
                a: None,
                b: Some(1)
            })
        );
        // Variant names count; integer widths do not.
        assert_ne!(hash(&Tagged::One { v: 1 }), hash(&Tagged::Two { v: 1 }));
        assert_eq!(hash(&1u8), hash(&1u64));
        assert_ne!(hash(&1u64), hash(&1i64));
        assert_ne!(hash(&-1i64), hash(&1i64));
    }

    #[test]
    fn maps_and_flattened_structs_hash_their_keys() {
        let a: BTreeMap<&str, u64> = [("x", 1)].into();
        let b: BTreeMap<&str, u64> = [("y", 1)].into();
        assert_ne!(hash(&a), hash(&b));
        // A flattened struct is a map of unknown length: it hashes like the same map.
        let flat = Flat {
            at: 2,
            inner: Inner { x: 3 },
        };
        let map: BTreeMap<&str, u64> = [("at", 2), ("x", 3)].into();
        assert_eq!(hash(&flat), hash(&map));
    }

    #[test]
    fn display_text_hashes_like_the_string_short_or_long() {
        struct Shown(String);
        impl Serialize for Shown {
            fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(&self.0)
            }
        }
        for len in [0, 5, 128, 129, 1000] {
            let text = "é".repeat(len / 2) + &"x".repeat(len % 2);
            assert_eq!(hash(&Shown(text.clone())), hash(&text));
        }
    }

    #[test]
    fn the_form_is_pinned() {
        // The binary form of a few values, pinned: changing it changes every trace hash.
        let mut fnv = Fnv64::default();
        fnv.value(&(300u64, -2i32, "ab", Some(true), ()));
        assert_eq!(fnv.0, {
            let mut expected = Fnv64::default();
            expected.write(&[
                TUPLE, UNSIGNED, 0xac, 0x02, SIGNED, 3, STR, 2, b'a', b'b', SOME, BOOL, 1, UNIT,
                END,
            ]);
            expected.0
        });
    }
}
