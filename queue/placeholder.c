/* placeholder so the library has a member until queue/ lands */
int pw_queue_placeholder_(void);
int pw_queue_placeholder_(void) { return 0; }
