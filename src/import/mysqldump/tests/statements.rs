//! Statements other than `INSERT`: skipped, or read for columns (`CREATE TABLE`) and the
//! time zone (`SET TIME_ZONE`).

use super::super::statements::parse_utc_offset;
use super::*;

#[test]
fn skips_everything_that_is_not_an_insert() {
    let dump = "\
/*M!999999\\- enable the sandbox mode */
-- MariaDB dump 10.19
# a hash comment; INSERT INTO t VALUES (0);
/* a block comment
   INSERT INTO t VALUES (0); */
CREATE DATABASE /*!32312 IF NOT EXISTS*/ `gofly` /*!40100 DEFAULT CHARACTER SET utf8mb4 */;
USE `gofly`;
SET NAMES utf8mb4;
DROP TABLE IF EXISTS `t`;
/*!50001 CREATE VIEW `v` AS SELECT 1 AS `x` */;
LOCK TABLES `t` WRITE;
ALTER TABLE `t` DISABLE KEYS;
INSERT INTO t VALUES (1,'kept');
UNLOCK TABLES;
;;
DELIMITER ;;
/*!50003 CREATE*/ /*!50017 DEFINER=`root`@`%`*/ /*!50003 TRIGGER `tr` AFTER INSERT ON `t` FOR EACH ROW BEGIN
  INSERT INTO log VALUES (NEW.id, 'trigger');
END */;;
CREATE PROCEDURE p()
BEGIN
  INSERT INTO log VALUES (2, 'procedure; with semicolons');
  SELECT ';;' AS `;;`;
END ;;
INSERT INTO t VALUES (2,'inside delimiter block');;
DELIMITER ;
delimiter $$
CREATE FUNCTION f() RETURNS INT BEGIN INSERT INTO log VALUES (3); RETURN 1; END$$
DELIMITER ;
INSERT INTO t VALUES (3,'after');
";
    let (got, stats) = read(dump);
    assert_eq!(got.malformed, []);
    assert_eq!(
        got.values(),
        [
            vec![number("1"), text("kept")],
            vec![number("2"), text("inside delimiter block")],
            vec![number("3"), text("after")],
        ]
    );
    assert!(got.rows.iter().all(|row| row.table == "t"));
    assert_eq!(stats.insert_statements, 3);
    assert_eq!(stats.time_zone_minutes, None);
}

#[test]
fn time_zone_comes_from_set_time_zone() {
    let dump = "\
INSERT INTO t VALUES (1);
/*!40103 SET @OLD_TIME_ZONE=@@TIME_ZONE */;
/*!40103 SET TIME_ZONE='+00:00' */;
INSERT INTO t VALUES (2);
SET TIME_ZONE='+08:00';
INSERT INTO t VALUES (3);
SET @@session.time_zone = \"-05:30\", @x = 'TIME_ZONE=+01:00';
INSERT INTO t VALUES (4);
/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;
SET @@GLOBAL.time_zone = '+03:00';
INSERT INTO t VALUES (5);
";
    let (got, stats) = read(dump);
    let zones: Vec<Option<i32>> = got.rows.iter().map(|row| row.zone).collect();
    assert_eq!(zones, [None, Some(0), Some(480), Some(-330), Some(-330)]);
    assert_eq!(stats.time_zone_minutes, Some(-330));
    let (_, stats) = read("SET time_zone = 'SYSTEM';");
    assert_eq!(stats.time_zone_minutes, None);
}

#[test]
fn utc_offsets() {
    assert_eq!(parse_utc_offset(b"+00:00"), Some(0));
    assert_eq!(parse_utc_offset(b"+8:00"), Some(480));
    assert_eq!(parse_utc_offset(b"-05:30"), Some(-330));
    assert_eq!(parse_utc_offset(b"+14:00"), Some(840));
    assert_eq!(parse_utc_offset(b"utc"), Some(0));
    assert_eq!(parse_utc_offset(b"+15:00"), None);
    assert_eq!(parse_utc_offset(b"+08:0"), None);
    assert_eq!(parse_utc_offset(b"Asia/Shanghai"), None);
    assert_eq!(parse_utc_offset(b""), None);
}

#[test]
fn columns_are_unknown_without_create_table() {
    let (got, _) = read("CREATE TABLE other (x int);\nINSERT INTO t VALUES (1,2,3);");
    assert_eq!(got.rows[0].columns, Vec::<String>::new());
    assert_eq!(got.rows[0].values.len(), 3);
    let (got, _) = read("CREATE TABLE IF NOT EXISTS `Users` (id int, name text);\nINSERT INTO users VALUES (1,'a');\nCREATE TABLE copy LIKE users;\nINSERT INTO copy VALUES (2);");
    assert_eq!(got.rows[0].columns, ["id", "name"]);
    assert_eq!(got.rows[1].columns, Vec::<String>::new());
    assert_eq!(got.malformed, []);
}

#[test]
fn columns_can_be_declared_for_a_data_only_dump() {
    let dump = "INSERT INTO `message` VALUES (1,'hi');\nINSERT INTO `user` VALUES (2);\n\
                CREATE TABLE `user` (`uid` int);\nINSERT INTO `user` VALUES (3);";
    let mut got = Collected::default();
    DumpReader::new(dump.as_bytes())
        .with_table_columns("message", &["id", "content"])
        .with_table_columns("user", &["id"])
        .read(&mut got)
        .expect("in-memory reads do not fail");
    let columns: Vec<Vec<String>> = got.rows.iter().map(|row| row.columns.clone()).collect();
    assert_eq!(columns, [vec!["id", "content"], vec!["id"], vec!["uid"]]);
}

#[test]
fn a_create_table_without_readable_columns_is_reported() {
    let (got, _) = read("CREATE TABLE t (`a` int, ???);\nINSERT INTO t VALUES (1);");
    assert_eq!(got.malformed.len(), 1);
    assert_eq!(got.malformed[0].problem, Problem::BadCreateTable);
    assert_eq!(got.rows.len(), 1);
}
