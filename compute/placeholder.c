/* placeholder so the library has a member until compute/ lands */
int pw_compute_placeholder_(void);
int pw_compute_placeholder_(void)
{
    return 0;
}
