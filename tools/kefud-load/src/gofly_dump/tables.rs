//! The dump's tables, in mysqldump's (alphabetical) order, each as go-fly's schema and rows:
//! `config`, `ipblack`, `message` (the bulk: visitors' sessions interleaved in time order),
//! `reply_group` and `reply_item`, `user` (agents, with go-fly's MD5 passwords), `visitor`.
//!
//! Invariants: ids count from 1 in each table; a table's structure, its INSERTs (through one
//! [`TableWriter`]) and its closing go out in that order; each table adds what it wrote to
//! the [`Summary`], so the summary describes exactly the bytes.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::io::{self, Write};

use md5::{Digest, Md5};

use super::content::{write_content, write_extra, write_refer, write_visitor_name, Content};
use super::data::{CONFIG_KEYS, REPLY_GROUPS};
use super::random::{fnv1a, hash, Rng, FNV_OFFSET};
use super::sql::{push_datetime, push_string, push_u64, Counted, TableWriter};
use super::world::{VisitorState, World, STREAM_AGENT, STREAM_IPBLACK, STREAM_MESSAGES};
use super::{Spec, Summary, CONVERSATION_GAP, DAY, LAST_TIMESTAMP, NET_BUFFER_LENGTH};

/// The dump being written: the counted output, the spec, the summary so far, and buffers
/// reused across rows.
pub(super) struct Dump<'a, W: Write> {
    pub(super) out: Counted<'a, W>,
    pub(super) spec: &'a Spec,
    pub(super) summary: Summary,
    /// The tuple being built, and the content being generated.
    pub(super) tuple: Vec<u8>,
    pub(super) scratch: Vec<u8>,
}

impl<W: Write> Dump<'_, W> {
    pub(super) fn text(&mut self, text: &str) -> io::Result<()> {
        self.out.write_all(text.as_bytes())
    }

    pub(super) fn config(&mut self, world: &World) -> io::Result<()> {
        let rows = world.agents.len() * CONFIG_KEYS.len();
        let mut table = self.table("config", CONFIG_SCHEMA, "utf8", rows as u64)?;
        let mut id = 0;
        for (index, agent) in world.agents.iter().enumerate() {
            for &(name, key, english, chinese) in CONFIG_KEYS {
                id += 1;
                let value = if index % 2 == 1 { chinese } else { english };
                let t = &mut self.tuple;
                t.clear();
                push_u64(t, id);
                for field in [name, key, value, &agent.login.name] {
                    t.push(b',');
                    push_string(t, field.as_bytes());
                }
                table.row(&mut self.out, t)?;
            }
        }
        self.summary.configs = rows as u64;
        self.end_table(table)
    }

    pub(super) fn ipblack(&mut self, world: &World) -> io::Result<()> {
        let rows = if world.visitors == 0 {
            0
        } else {
            1 + world.visitors / 2000
        };
        let mut table = self.table("ipblack", IPBLACK_SCHEMA, "utf8", rows)?;
        let mut seen = HashSet::new();
        let mut id = 0;
        let mut candidate = 0;
        while id < rows {
            let visitor = hash(world.seed, STREAM_IPBLACK, candidate) % world.visitors;
            candidate += 1;
            self.scratch.clear();
            world.ip(visitor, 0, &mut self.scratch);
            if !seen.insert(self.scratch.clone()) {
                continue;
            }
            id += 1;
            let t = &mut self.tuple;
            t.clear();
            push_u64(t, id);
            t.push(b',');
            push_string(t, &self.scratch);
            t.push(b',');
            push_datetime(t, world.arrival(visitor) + DAY);
            t.push(b',');
            push_string(t, world.agent_of(visitor).login.name.as_bytes());
            table.row(&mut self.out, t)?;
        }
        self.summary.ipblacks = rows;
        self.end_table(table)
    }

    /// Writes the messages; returns each visitor's state at the end (for `visitor`).
    pub(super) fn message(&mut self, world: &World) -> io::Result<Vec<VisitorState>> {
        let spec = self.spec;
        let mut table = self.table("message", MESSAGE_SCHEMA, "utf8mb4", spec.messages)?;
        let mut visitors: Vec<VisitorState> = world
            .budgets(spec.messages)
            .into_iter()
            .enumerate()
            .map(|(v, budget)| VisitorState::new(budget, world.arrival(v as u64)))
            .collect();
        let mut next: BinaryHeap<Reverse<(i64, u32)>> = visitors
            .iter()
            .enumerate()
            .filter(|(_, state)| state.left > 0)
            .map(|(v, _)| Reverse((world.arrival(v as u64), v as u32)))
            .collect();
        let mut rng = Rng::new(hash(world.seed, STREAM_MESSAGES, 0));
        let mut fnv = FNV_OFFSET;
        let mut id = 0u64;
        while let Some(Reverse((at, visitor))) = next.pop() {
            id += 1;
            let state = &mut visitors[visitor as usize];
            if state.session_left == 0 {
                let length = match rng.below(10) {
                    0..=2 => rng.range(1, 3),
                    3..=7 => rng.range(3, 10),
                    _ => rng.range(10, 30),
                };
                state.session_left = length.min(state.left) as u32;
                state.kefu_turn = rng.below(10) == 0;
            } else if rng.below(100) < 65 {
                state.kefu_turn = !state.kefu_turn;
            }
            let from_kefu = state.kefu_turn;
            if state
                .last_at
                .map_or(true, |last| at - last > CONVERSATION_GAP)
            {
                self.summary.conversations_24h += 1;
            }
            if state.last_at.is_none() {
                self.summary.visitors_with_messages += 1;
            }
            state.last_at = Some(at);
            state.left -= 1;
            state.session_left -= 1;
            if state.left > 0 {
                let pause = if state.session_left > 0 {
                    let most = u64::from(state.spacing_max);
                    rng.range(5.min(most), most)
                } else {
                    let mean = u64::from(state.gap_mean);
                    rng.range(mean / 6, mean * 2)
                };
                let then = (at + pause as i64).min(LAST_TIMESTAMP);
                next.push(Reverse((then, visitor)));
            }

            let visitor = u64::from(visitor);
            self.scratch.clear();
            let kind = write_content(
                &mut rng,
                &mut self.scratch,
                from_kefu,
                world.prefers_chinese(visitor),
                at,
            );
            fnv = fnv1a(fnv, &self.scratch);
            fnv = fnv1a(fnv, &[0xff]);
            match kind {
                Content::Image => self.summary.image_messages += 1,
                Content::Attachment => self.summary.attachment_messages += 1,
                Content::Face => self.summary.face_messages += 1,
                Content::Text => {}
            }
            if from_kefu {
                self.summary.kefu_messages += 1;
            } else {
                self.summary.visitor_messages += 1;
            }
            self.summary.first_message_at.get_or_insert(at);
            self.summary.last_message_at = Some(at);

            let t = &mut self.tuple;
            t.clear();
            push_u64(t, id);
            t.push(b',');
            push_string(t, world.agent_of(visitor).login.name.as_bytes());
            t.extend_from_slice(b",'");
            world.visitor_uuid(visitor, t);
            t.extend_from_slice(b"',");
            push_string(t, &self.scratch);
            t.push(b',');
            push_datetime(t, at);
            t.push(b',');
            if rng.below(100) < 3 {
                t.extend_from_slice(b"NULL");
            } else {
                push_datetime(t, at);
            }
            t.extend_from_slice(b",NULL,");
            t.extend_from_slice(if from_kefu { b"'kefu'" } else { b"'visitor'" });
            let unread = rng.below(100) < if from_kefu { 12 } else { 3 };
            t.extend_from_slice(if unread { b",'unread'" } else { b",'read'" });
            table.row(&mut self.out, t)?;
        }
        self.summary.messages = id;
        self.summary.content_fnv1a = fnv;
        self.end_table(table)?;
        Ok(visitors)
    }

    pub(super) fn reply_tables(&mut self, world: &World) -> io::Result<()> {
        let groups_of = |agent: usize| 1 + hash(world.seed, STREAM_AGENT, agent as u64 + 1000) % 3;
        let items_of = |group: u64| 2 + hash(world.seed, STREAM_AGENT, group + 1_000_000) % 4;
        let group_count: u64 = (0..world.agents.len()).map(groups_of).sum();
        let item_count: u64 = (1..=group_count).map(items_of).sum();

        let mut table = self.table("reply_group", REPLY_GROUP_SCHEMA, "utf8", group_count)?;
        let mut group = 0u64;
        for (index, agent) in world.agents.iter().enumerate() {
            for slot in 0..groups_of(index) {
                group += 1;
                let t = &mut self.tuple;
                t.clear();
                push_u64(t, group);
                t.push(b',');
                let name = REPLY_GROUPS[(slot as usize + index) % REPLY_GROUPS.len()].0;
                push_string(t, name.as_bytes());
                t.push(b',');
                push_string(t, agent.login.name.as_bytes());
                table.row(&mut self.out, t)?;
            }
        }
        self.end_table(table)?;

        let mut table = self.table("reply_item", REPLY_ITEM_SCHEMA, "utf8", item_count)?;
        let (mut group, mut item) = (0u64, 0u64);
        for (index, agent) in world.agents.iter().enumerate() {
            for slot in 0..groups_of(index) {
                group += 1;
                let items = REPLY_GROUPS[(slot as usize + index) % REPLY_GROUPS.len()].1;
                for n in 0..items_of(group) {
                    item += 1;
                    let (name, content) = items[(n as usize) % items.len()];
                    let t = &mut self.tuple;
                    t.clear();
                    push_u64(t, item);
                    t.push(b',');
                    push_string(t, content.as_bytes());
                    t.push(b',');
                    push_u64(t, group);
                    t.push(b',');
                    push_string(t, agent.login.name.as_bytes());
                    t.push(b',');
                    push_string(t, name.as_bytes());
                    table.row(&mut self.out, t)?;
                }
            }
        }
        self.summary.reply_groups = group_count;
        self.summary.reply_items = item_count;
        self.end_table(table)
    }

    pub(super) fn user(&mut self, world: &World) -> io::Result<()> {
        let rows = world.agents.len() as u64;
        let mut table = self.table("user", USER_SCHEMA, "utf8", rows)?;
        for (index, agent) in world.agents.iter().enumerate() {
            let t = &mut self.tuple;
            t.clear();
            push_u64(t, index as u64 + 1);
            t.push(b',');
            push_string(t, agent.login.name.as_bytes());
            t.push(b',');
            push_string(t, md5_hex(agent.login.password.as_bytes()).as_bytes());
            t.push(b',');
            push_string(t, agent.nickname.as_bytes());
            t.push(b',');
            push_datetime(t, agent.created_at);
            t.push(b',');
            if index % 3 == 2 {
                t.extend_from_slice(b"NULL");
            } else {
                push_datetime(t, agent.created_at + 7 * DAY);
            }
            t.extend_from_slice(b",NULL,");
            let avatar = format!("/static/images/{}.jpg", 3 + index % 12);
            push_string(t, avatar.as_bytes());
            table.row(&mut self.out, t)?;
        }
        self.end_table(table)
    }

    pub(super) fn visitor(&mut self, world: &World, states: &[VisitorState]) -> io::Result<()> {
        let mut table = self.table("visitor", VISITOR_SCHEMA, "utf8", world.visitors)?;
        for (visitor, state) in (0..world.visitors).zip(states) {
            let h = world.visitor_hash(visitor);
            let city = world.city(visitor);
            let arrival = world.arrival(visitor);
            let t = &mut self.tuple;
            t.clear();
            push_u64(t, visitor + 1);
            t.push(b',');
            self.scratch.clear();
            write_visitor_name(&mut self.scratch, h, city, visitor);
            push_string(t, &self.scratch);
            t.push(b',');
            let avatar = match (h >> 24) % 4 {
                0 => "/static/images/1.png".to_string(),
                1 => "/static/images/2.png".to_string(),
                _ => format!("/static/images/{}.jpg", (h >> 28) % 14 + 1),
            };
            push_string(t, avatar.as_bytes());
            t.push(b',');
            self.scratch.clear();
            world.ip(visitor, 0, &mut self.scratch);
            push_string(t, &self.scratch);
            t.push(b',');
            push_string(t, world.agent_of(visitor).login.name.as_bytes());
            t.push(b',');
            push_datetime(t, arrival);
            t.push(b',');
            match state.last_at {
                Some(last) => push_datetime(t, last),
                None if (h >> 32) % 3 == 0 => t.extend_from_slice(b"NULL"),
                None => push_datetime(t, arrival),
            }
            t.extend_from_slice(b",NULL,'");
            world.visitor_uuid(visitor, t);
            t.extend_from_slice(b"',");
            push_u64(t, u64::from((h >> 36) % 20 == 0));
            t.push(b',');
            self.scratch.clear();
            write_refer(&mut self.scratch, h);
            push_string(t, &self.scratch);
            t.push(b',');
            let city_field = if (h >> 5) % 2 == 0 {
                city.chinese
            } else {
                city.english
            };
            push_string(t, city_field.as_bytes());
            t.push(b',');
            self.scratch.clear();
            let proxied = (h >> 44) % 10 == 0;
            world.ip(visitor, if proxied { 0x9e37 } else { 0 }, &mut self.scratch);
            push_string(t, &self.scratch);
            t.push(b',');
            self.scratch.clear();
            write_extra(&mut self.scratch, h, city);
            push_string(t, &self.scratch);
            table.row(&mut self.out, t)?;
        }
        self.summary.visitors = world.visitors;
        self.end_table(table)
    }

    /// Writes a table's structure and the start of its data.
    fn table(
        &mut self,
        name: &'static str,
        columns: &str,
        charset: &str,
        rows: u64,
    ) -> io::Result<TableWriter> {
        let auto_increment = if rows > 0 {
            format!(" AUTO_INCREMENT={}", rows + 1)
        } else {
            String::new()
        };
        self.text(&format!(
            "\n--\n-- Table structure for table `{name}`\n--\n\n\
             DROP TABLE IF EXISTS `{name}`;\n\
             /*!40101 SET @saved_cs_client     = @@character_set_client */;\n\
             /*!40101 SET character_set_client = utf8 */;\n\
             CREATE TABLE `{name}` (\n{columns}\n) ENGINE=InnoDB{auto_increment} DEFAULT CHARSET={charset};\n\
             /*!40101 SET character_set_client = @saved_cs_client */;\n\n\
             --\n-- Dumping data for table `{name}`\n--\n\n\
             LOCK TABLES `{name}` WRITE;\n\
             /*!40000 ALTER TABLE `{name}` DISABLE KEYS */;\n"
        ))?;
        Ok(TableWriter {
            name,
            extended: self.spec.extended_insert,
            rows_per_insert: self.spec.rows_per_insert,
            statement: Vec::with_capacity(if self.spec.extended_insert {
                NET_BUFFER_LENGTH + 4096
            } else {
                4096
            }),
            rows_in_statement: 0,
            statements: 0,
        })
    }

    fn end_table(&mut self, mut table: TableWriter) -> io::Result<()> {
        table.flush(&mut self.out)?;
        self.summary.insert_statements += table.statements;
        let name = table.name;
        self.text(&format!(
            "/*!40000 ALTER TABLE `{name}` ENABLE KEYS */;\nUNLOCK TABLES;\n"
        ))
    }
}

/// MD5 in lower-case hex, as go-fly stores passwords.
pub(super) fn md5_hex(input: &[u8]) -> String {
    format!("{:x}", Md5::digest(input))
}

// go-fly's import.sql, as mysqldump of MySQL 5.7 writes it back.

const CONFIG_SCHEMA: &str = "  `id` int(10) unsigned NOT NULL AUTO_INCREMENT,
  `conf_name` varchar(255) NOT NULL DEFAULT '',
  `conf_key` varchar(255) NOT NULL DEFAULT '',
  `conf_value` varchar(255) NOT NULL DEFAULT '',
  `user_id` varchar(500) NOT NULL DEFAULT '',
  PRIMARY KEY (`id`),
  KEY `conf_key` (`conf_key`),
  KEY `user_id` (`user_id`)";

const IPBLACK_SCHEMA: &str = "  `id` int(11) NOT NULL AUTO_INCREMENT,
  `ip` varchar(100) NOT NULL DEFAULT '',
  `create_at` timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,
  `kefu_id` varchar(100) NOT NULL DEFAULT '',
  PRIMARY KEY (`id`),
  UNIQUE KEY `ip` (`ip`)";

const MESSAGE_SCHEMA: &str = "  `id` int(11) NOT NULL AUTO_INCREMENT,
  `kefu_id` varchar(100) NOT NULL DEFAULT '',
  `visitor_id` varchar(100) NOT NULL DEFAULT '',
  `content` varchar(2048) NOT NULL DEFAULT '',
  `created_at` timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,
  `updated_at` timestamp NULL DEFAULT NULL,
  `deleted_at` timestamp NULL DEFAULT NULL,
  `mes_type` enum('kefu','visitor') NOT NULL DEFAULT 'visitor',
  `status` enum('read','unread') NOT NULL DEFAULT 'unread',
  PRIMARY KEY (`id`),
  KEY `kefu_id` (`kefu_id`),
  KEY `visitor_id` (`visitor_id`)";

const REPLY_GROUP_SCHEMA: &str = "  `id` int(11) NOT NULL AUTO_INCREMENT,
  `group_name` varchar(50) NOT NULL DEFAULT '',
  `user_id` varchar(50) NOT NULL DEFAULT '',
  PRIMARY KEY (`id`),
  KEY `user_id` (`user_id`)";

const REPLY_ITEM_SCHEMA: &str = "  `id` int(11) NOT NULL AUTO_INCREMENT,
  `content` varchar(1024) NOT NULL DEFAULT '',
  `group_id` int(11) NOT NULL DEFAULT '0',
  `user_id` varchar(50) NOT NULL DEFAULT '',
  `item_name` varchar(50) NOT NULL DEFAULT '',
  PRIMARY KEY (`id`),
  KEY `user_id` (`user_id`),
  KEY `group_id` (`group_id`)";

const USER_SCHEMA: &str = "  `id` int(11) NOT NULL AUTO_INCREMENT,
  `name` varchar(50) NOT NULL DEFAULT '',
  `password` varchar(50) NOT NULL DEFAULT '',
  `nickname` varchar(50) NOT NULL DEFAULT '',
  `created_at` timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,
  `updated_at` timestamp NULL DEFAULT NULL,
  `deleted_at` timestamp NULL DEFAULT NULL,
  `avator` varchar(100) NOT NULL DEFAULT '',
  PRIMARY KEY (`id`),
  UNIQUE KEY `idx_name` (`name`)";

const VISITOR_SCHEMA: &str = "  `id` int(11) NOT NULL AUTO_INCREMENT,
  `name` varchar(50) NOT NULL DEFAULT '',
  `avator` varchar(500) NOT NULL DEFAULT '',
  `source_ip` varchar(50) NOT NULL DEFAULT '',
  `to_id` varchar(50) NOT NULL DEFAULT '',
  `created_at` timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,
  `updated_at` timestamp NULL DEFAULT NULL,
  `deleted_at` timestamp NULL DEFAULT NULL,
  `visitor_id` varchar(100) NOT NULL DEFAULT '',
  `status` tinyint(4) NOT NULL DEFAULT '0',
  `refer` varchar(500) NOT NULL DEFAULT '',
  `city` varchar(100) NOT NULL DEFAULT '',
  `client_ip` varchar(100) NOT NULL DEFAULT '',
  `extra` varchar(2048) NOT NULL DEFAULT '',
  PRIMARY KEY (`id`),
  UNIQUE KEY `visitor_id` (`visitor_id`),
  KEY `to_id` (`to_id`),
  KEY `idx_update` (`updated_at`)";
