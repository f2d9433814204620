/* keel-run refuses a statically linked program (built with -static; tests/test_run.c). */
int main(void)
{
    return 0;
}
