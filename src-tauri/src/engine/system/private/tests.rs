use super::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

#[test]
fn a_new_folder_is_0700_and_an_open_one_of_ours_is_closed() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("a/b");
    own_dir(&dir, "set X").unwrap();
    assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    own_dir(&dir, "set X").unwrap();
    assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
}

#[test]
fn a_link_of_ours_is_followed_and_checked_and_a_file_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let elsewhere = root.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let link = root.path().join("link");
    std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
    // A link of ours leads to the folder it names, which is checked (and closed) too.
    std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o755)).unwrap();
    own_dir(&link, "set X").unwrap();
    assert_eq!(std::fs::metadata(&elsewhere).unwrap().mode() & 0o777, 0o700);
    let file = root.path().join("file");
    std::fs::write(&file, "").unwrap();
    let err = own_dir(&file, "set X").unwrap_err();
    assert!(err.to_string().contains("not a folder"), "{err}");
}

#[test]
fn a_parent_others_may_write_without_the_sticky_bit_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let shared = root.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = own_dir(&shared.join("mine"), "set TMPDIR").unwrap_err();
    assert!(matches!(err, PlaceError::OpenAncestor { .. }), "{err}");
    assert!(err.to_string().contains("set TMPDIR"), "{err}");
    // Like /tmp: the sticky bit keeps others from renaming what is ours.
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    own_dir(&shared.join("mine"), "set TMPDIR").unwrap();
}

#[test]
fn a_replaced_file_is_0600_and_a_planted_link_is_never_followed() {
    let root = tempfile::tempdir().unwrap();
    let victim = root.path().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    let path = root.path().join("holder.json");
    // A link planted at the final name is replaced, not written through.
    std::os::unix::fs::symlink(&victim, &path).unwrap();
    replace(&path, b"{}", 0o600).unwrap();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "{}");
    let meta = std::fs::symlink_metadata(&path).unwrap();
    assert!(meta.is_file());
    assert_eq!(meta.mode() & 0o777, 0o600);
    // `create` refuses a link, and keeps an existing file as it is.
    let db = root.path().join("db");
    std::os::unix::fs::symlink(&victim, &db).unwrap();
    assert!(create(&db).is_err());
    create(&path).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "{}");
}

#[test]
fn a_damaged_file_goes_aside_with_its_companions_never_over_an_earlier_one() {
    let root = tempfile::tempdir().unwrap();
    let db = root.path().join("history.sqlite3");
    std::fs::write(&db, "one").unwrap();
    std::fs::write(root.path().join("history.sqlite3-wal"), "wal").unwrap();
    let first = move_aside(&db, &["-wal", "-shm"]).unwrap();
    assert_eq!(std::fs::read_to_string(&first).unwrap(), "one");
    let wal = PathBuf::from(format!("{}-wal", first.display()));
    assert_eq!(std::fs::read_to_string(wal).unwrap(), "wal");
    std::fs::write(&db, "two").unwrap();
    let second = move_aside(&db, &["-wal", "-shm"]).unwrap();
    assert_ne!(first, second);
    assert_eq!(std::fs::read_to_string(&second).unwrap(), "two");
    assert!(!db.exists());
}

#[test]
fn temporaries_left_by_a_crash_are_removed_and_nothing_else() {
    let root = tempfile::tempdir().unwrap();
    let path = root.path().join("tokens.journal");
    std::fs::write(temporary_name(&path), "litter").unwrap();
    std::fs::write(&path, "kept").unwrap();
    std::fs::write(root.path().join(".other.1.2.tmp"), "not ours").unwrap();
    remove_temporaries(&path);
    let mut left: Vec<String> = std::fs::read_dir(root.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, vec![".other.1.2.tmp", "tokens.journal"]);
}

#[test]
fn tighten_closes_what_others_could_read_and_names_it() {
    let root = tempfile::tempdir().unwrap();
    let open = root.path().join("history.sqlite3");
    let closed = root.path().join("ok");
    std::fs::write(&open, "").unwrap();
    std::fs::write(&closed, "").unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(tighten(root.path()), vec![open.clone()]);
    assert_eq!(std::fs::metadata(&open).unwrap().mode() & 0o777, 0o600);
    assert!(tighten(root.path()).is_empty());
}
