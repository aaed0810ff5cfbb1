//! Every console page, as a platform admin and as tenant admins, with real traffic behind it.
