//! A small `--flag value` parser: the harness needs a handful of numeric flags, not a framework.

use std::collections::BTreeMap;
use std::str::FromStr;

use crate::Result;

/// Parsed command-line flags: every flag takes exactly one value (`--name value` or `--name=value`).
///
/// Getters remove the flags they read, so [`Args::finish`] can reject flags that nothing used
/// (a typo such as `--conections` fails loudly instead of silently running the default).
#[derive(Debug, Default)]
pub struct Args {
    flags: BTreeMap<String, String>,
}

impl Args {
    /// Parses flags from `items` (without the program name or the scenario name).
    pub fn parse<I, S>(items: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut flags = BTreeMap::new();
        let mut it = items.into_iter().map(Into::into);
        while let Some(item) = it.next() {
            let Some(name) = item.strip_prefix("--") else {
                return Err(
                    format!("unexpected argument `{item}` (flags look like --name value)").into(),
                );
            };
            let (name, value) = match name.split_once('=') {
                Some((n, v)) => (n.to_owned(), v.to_owned()),
                None => {
                    let value = it
                        .next()
                        .ok_or_else(|| format!("flag --{name} needs a value"))?;
                    (name.to_owned(), value)
                }
            };
            if flags.insert(name.clone(), value).is_some() {
                return Err(format!("flag --{name} given twice").into());
            }
        }
        Ok(Self { flags })
    }

    /// Takes flag `name` parsed as `T`, or `default` when absent.
    pub fn get<T>(&mut self, name: &str, default: T) -> Result<T>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        Ok(self.opt(name)?.unwrap_or(default))
    }

    /// Takes flag `name` parsed as `T`, or `None` when absent.
    pub fn opt<T>(&mut self, name: &str) -> Result<Option<T>>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.flags.remove(name) {
            None => Ok(None),
            Some(raw) => raw
                .parse()
                .map(Some)
                .map_err(|e| format!("flag --{name} `{raw}`: {e}").into()),
        }
    }

    /// Takes flag `name` parsed as `T`; it must be present.
    pub fn required<T>(&mut self, name: &str) -> Result<T>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        self.opt(name)?
            .ok_or_else(|| format!("flag --{name} is required").into())
    }

    /// Fails when flags remain that no getter took.
    pub fn finish(self) -> Result<()> {
        if self.flags.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = self.flags.keys().map(|k| format!("--{k}")).collect();
        Err(format!("unknown flag(s) for this command: {}", names.join(", ")).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_forms_and_rejects_leftovers() {
        let mut a = Args::parse(["--port", "80", "--url=ws://x/y", "--typo", "1"]).unwrap();
        assert_eq!(a.get("port", 0u16).unwrap(), 80);
        assert_eq!(a.required::<String>("url").unwrap(), "ws://x/y");
        assert_eq!(a.get("window", 4u32).unwrap(), 4);
        assert!(a.finish().is_err());
    }

    #[test]
    fn rejects_missing_value_and_bad_numbers() {
        assert!(Args::parse(["--port"]).is_err());
        assert!(Args::parse(["port"]).is_err());
        let mut a = Args::parse(["--port", "x"]).unwrap();
        assert!(a.get("port", 0u16).is_err());
    }
}
