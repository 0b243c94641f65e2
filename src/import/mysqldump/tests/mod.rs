//! The reader's tests: a sink that keeps everything it is given ([`Collected`]), and reads
//! that split the input at every byte ([`read_limited`]) so that no result depends on how
//! the input was buffered. The tests are by topic: `inserts.rs` (whole dumps and every form
//! of `INSERT`), `values.rs` (literals), `statements.rs` (what is skipped or learnt),
//! `malformed.rs` (what is reported, and where reading resumes).

mod inserts;
mod malformed;
mod statements;
mod values;

use super::*;
use std::convert::Infallible;
use std::io::{self, BufReader, Read};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Owned {
    Null,
    Number(String),
    Text(Vec<u8>),
    Binary(Vec<u8>),
}

fn text(s: &str) -> Owned {
    Owned::Text(s.as_bytes().to_vec())
}

fn number(s: &str) -> Owned {
    Owned::Number(s.to_string())
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct OwnedRow {
    table: String,
    columns: Vec<String>,
    line: u64,
    zone: Option<i32>,
    values: Vec<Owned>,
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Collected {
    inserts: Vec<(String, u64)>,
    rows: Vec<OwnedRow>,
    malformed: Vec<Malformed>,
}

impl Collected {
    fn values(&self) -> Vec<Vec<Owned>> {
        self.rows.iter().map(|row| row.values.clone()).collect()
    }

    fn lines(&self) -> Vec<u64> {
        self.rows.iter().map(|row| row.line).collect()
    }
}

impl DumpSink for Collected {
    type Error = Infallible;

    fn insert_start(&mut self, insert: &InsertStatement<'_>) -> Result<(), Infallible> {
        self.inserts
            .push((insert.table().to_string(), insert.line()));
        Ok(())
    }

    fn row(&mut self, row: &Row<'_>) -> Result<(), Infallible> {
        let values = row
            .values()
            .map(|value| match value {
                Value::Null => Owned::Null,
                Value::Number(n) => Owned::Number(n.to_string()),
                Value::Text(t) => Owned::Text(t.to_vec()),
                Value::Binary(b) => Owned::Binary(b.to_vec()),
            })
            .collect();
        self.rows.push(OwnedRow {
            table: row.table().to_string(),
            columns: row.columns().to_vec(),
            line: row.line(),
            zone: row.time_zone_minutes(),
            values,
        });
        Ok(())
    }

    fn malformed(&mut self, malformed: &Malformed) -> Result<(), Infallible> {
        self.malformed.push(malformed.clone());
        Ok(())
    }
}

/// Hands out at most `chunk` bytes per read, to split the input everywhere.
struct Trickle<'a> {
    data: &'a [u8],
    chunk: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.chunk.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fn read_from(input: impl Read, max_tuple_bytes: usize) -> (Collected, DumpStats) {
    let mut collected = Collected::default();
    let stats = DumpReader::new(input)
        .with_max_tuple_bytes(max_tuple_bytes)
        .read(&mut collected)
        .expect("in-memory reads do not fail");
    (collected, stats)
}

/// Reads `dump` in one piece, then through 1-, 2-, 3- and 7-byte reads behind a 7-byte
/// `BufReader`, and checks that every split gives the same rows, lines and problems.
fn read_limited(dump: &[u8], max_tuple_bytes: usize) -> (Collected, DumpStats) {
    let whole = read_from(dump, max_tuple_bytes);
    for chunk in [1, 2, 3, 7] {
        let trickle = Trickle { data: dump, chunk };
        let split = read_from(BufReader::with_capacity(7, trickle), max_tuple_bytes);
        assert_eq!(split, whole, "reading {chunk} bytes at a time");
    }
    whole
}

fn read(dump: &str) -> (Collected, DumpStats) {
    read_limited(dump.as_bytes(), MAX_TUPLE_BYTES)
}

const MYSQLDUMP: &str = "\
-- MySQL dump 10.13  Distrib 5.7.40, for Linux (x86_64)
--
-- Host: localhost    Database: gofly
-- ------------------------------------------------------
-- Server version\t5.7.40

/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;
/*!40101 SET NAMES utf8mb4 */;
/*!40103 SET @OLD_TIME_ZONE=@@TIME_ZONE */;
/*!40103 SET TIME_ZONE='+00:00' */;
/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;

--
-- Table structure for table `message`
--

DROP TABLE IF EXISTS `message`;
/*!40101 SET @saved_cs_client     = @@character_set_client */;
/*!40101 SET character_set_client = utf8 */;
CREATE TABLE `message` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `kefu_id` varchar(100) NOT NULL DEFAULT '',
  `content` varchar(2048) NOT NULL DEFAULT '' COMMENT 'text, with (parens)',
  `mes_type` enum('kefu','visitor') NOT NULL DEFAULT 'visitor',
  PRIMARY KEY (`id`),
  KEY `kefu_id` (`kefu_id`),
  UNIQUE KEY `u` (`kefu_id`,`id`),
  CONSTRAINT `fk` FOREIGN KEY (`kefu_id`) REFERENCES `user` (`name`),
  FULLTEXT KEY `ft` (`content`),
  INDEX `i` (`id`)
) ENGINE=InnoDB AUTO_INCREMENT=4 DEFAULT CHARSET=utf8mb4;
/*!40101 SET character_set_client = @saved_cs_client */;

--
-- Dumping data for table `message`
--

LOCK TABLES `message` WRITE;
/*!40000 ALTER TABLE `message` DISABLE KEYS */;
INSERT INTO `message` VALUES (1,'agent','hello','visitor'),(2,'agent','你好 😀','kefu'),(3,'agent','','visitor');
/*!40000 ALTER TABLE `message` ENABLE KEYS */;
UNLOCK TABLES;
/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;

/*!40101 SET CHARACTER_SET_CLIENT=@OLD_CHARACTER_SET_CLIENT */;

-- Dump completed on 2024-01-01 12:00:00
";
